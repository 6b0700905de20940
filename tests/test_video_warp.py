"""The warp against a per-pixel numpy transcription of bilinear sampling."""

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.video.warp import inside, warp


def _warp_numpy(image, flow):
    """Bilinear sampling at ``x + flow(x)``, clamped to the border, one pixel at a time."""
    h, w, _ = image.shape
    out = np.zeros(image.shape, np.float64)
    for y in range(h):
        for x in range(w):
            sx = min(max(x + flow[y, x, 0], 0.0), w - 1.0)
            sy = min(max(y + flow[y, x, 1], 0.0), h - 1.0)
            x0, y0 = min(int(np.floor(sx)), w - 2), min(int(np.floor(sy)), h - 2)
            ax, ay = sx - x0, sy - y0
            out[y, x] = (1 - ay) * ((1 - ax) * image[y0, x0] + ax * image[y0, x0 + 1]) + ay * (
                (1 - ax) * image[y0 + 1, x0] + ax * image[y0 + 1, x0 + 1]
            )
    return out


def test_warp_matches_numpy_bilinear_sampling():
    rng = np.random.default_rng(0)
    image = rng.random((9, 11, 3))
    flow = rng.uniform(-3, 3, (9, 11, 2))  # some samples leave the image: clamped
    got = np.asarray(warp(jnp.asarray(image, jnp.float32), jnp.asarray(flow, jnp.float32)))
    # float32 inputs in [0, 1], weights in [0, 1]: a few ulps of 1
    np.testing.assert_allclose(got, _warp_numpy(image, flow), atol=1e-5)


def test_integer_flow_is_a_shift_and_inside_marks_the_border():
    image = np.arange(6 * 7 * 3, dtype=np.float32).reshape(6, 7, 3)
    flow = np.zeros((6, 7, 2), np.float32)
    flow[..., 0], flow[..., 1] = 2, -1
    got = np.asarray(warp(jnp.asarray(image), jnp.asarray(flow)))
    np.testing.assert_array_equal(got[1:, :5], image[:-1, 2:])
    expected_inside = np.zeros((6, 7), bool)
    expected_inside[1:, :5] = True
    np.testing.assert_array_equal(np.asarray(inside(jnp.asarray(flow))), expected_inside)


def test_warp_batches_with_vmap():
    rng = np.random.default_rng(1)
    images = rng.random((3, 5, 6, 3)).astype(np.float32)
    flows = rng.uniform(-2, 2, (3, 5, 6, 2)).astype(np.float32)
    got = np.asarray(jax.vmap(warp)(jnp.asarray(images), jnp.asarray(flows)))
    for i in range(3):
        np.testing.assert_allclose(got[i], _warp_numpy(images[i], flows[i]), atol=1e-5)
