"""Optical flow on a clip with known motion: the synthetic clip's exact flow, DIS within half a
pixel of it where the flow is reliable, the cache."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from nstjax import examples, image
from nstjax.video import flow as flow_module
from nstjax.video.flow import FlowCache
from nstjax.video.reliability import reliability
from nstjax.video.synthetic import synthetic_clip
from nstjax.video.warp import warp


@pytest.fixture(scope="module")
def clip():
    still = image.load_image(examples.CONTENT, 192)
    return synthetic_clip(still, 4, (48, 64), shift=(1.5, 0.75), zoom=0.01)


def test_synthetic_frames_show_the_still_where_the_true_flow_says(clip):
    still = image.load_image(examples.CONTENT, 192)
    h, w = clip.frames.shape[1:3]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    for t in (0, 3):
        # frame t's pixel x is the still at s_t x + o_t: the still sampled there directly
        sx = clip.scales[t] * xs + clip.offsets[t, 0]
        sy = clip.scales[t] * ys + clip.offsets[t, 1]
        red = ndimage.map_coordinates(still[..., 0], [sy, sx], order=1)
        np.testing.assert_allclose(clip.frames[t, ..., 0], red, atol=1e-6)
    # the true flow from frame 3 to frame 0, applied to frame 0, gives frame 3 (away from the
    # border; two bilinear interpolations of a smooth photo differ by little)
    warped = np.asarray(warp(jnp.asarray(clip.frames[0]), jnp.asarray(clip.flow(3, 0))))
    assert np.mean(np.abs(warped[4:-4, 4:-4] - clip.frames[3, 4:-4, 4:-4])) < 0.01
    shifted = np.asarray(warp(jnp.asarray(clip.frames[0]), jnp.zeros((h, w, 2))))
    assert np.mean(np.abs(shifted[4:-4, 4:-4] - clip.frames[3, 4:-4, 4:-4])) > 0.03


def test_estimated_flow_is_within_half_a_pixel_on_reliable_pixels(clip):
    for i, j in ((1, 0), (0, 1), (3, 2)):
        estimated = flow_module.optical_flow(clip.frames[i], clip.frames[j])
        back = flow_module.optical_flow(clip.frames[j], clip.frames[i])
        reliable = reliability(estimated, back) > 0.5
        assert reliable.mean() > 0.8
        error = np.linalg.norm(estimated - clip.flow(i, j), axis=-1)
        assert error[reliable].max() < 0.5, (i, j, error[reliable].max())


def test_flows_are_computed_once_and_read_back_from_the_folder(clip, tmp_path, monkeypatch):
    first = FlowCache(clip.frames, tmp_path).flow(2, 1)
    monkeypatch.setattr(flow_module, "optical_flow", lambda *a: pytest.fail("recomputed"))
    again = FlowCache(clip.frames, tmp_path).flow(2, 1)
    np.testing.assert_array_equal(first, again)
    other = clip.frames.copy()
    other[0, 0, 0, 0] = 1 - other[0, 0, 0, 0]  # another clip: another key, not these flows
    with pytest.raises(pytest.fail.Exception):
        FlowCache(other, tmp_path).flow(2, 1)
