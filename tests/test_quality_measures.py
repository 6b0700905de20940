"""nstjax.quality against a float64 numpy transcription of each definition (tests/quality_oracle.py)."""

import jax.numpy as jnp
import numpy as np
import pytest
import quality_oracle as oracle

from nstjax import quality, vgg
from nstjax.errors import NstjaxError
from nstjax.quality import histogram, protocol, sliced

# float32 features against float64: cosines of unit vectors agree to a few 1e-6; 2e-5 leaves room.
COSINE_TOL = 2e-5
# quantities that are squares of features: float32 relative error, a few 1e-6 per layer.
RELATIVE_TOL = 1e-4


def _images(seed=0, n=1, size=(32, 32)):
    rng = np.random.default_rng(seed)
    smooth = rng.random((n, size[0] // 4, size[1] // 4, 3))
    noisy = smooth.repeat(4, axis=1).repeat(4, axis=2) + 0.2 * rng.random((n, *size, 3))
    return np.clip(noisy, 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def triple():
    output, content = _images(1)[0], _images(2)[0]
    style = _images(3, size=(40, 36))[0]
    return output, content, style


def _check_wang(params, triple):
    output, content, style = triple
    got = quality.measure_one(params, output, content, style)
    want = oracle.wang(params, *(x.astype(np.float64) for x in triple))
    for name in ("content_fidelity", "global_effects", "color_similarity", "local_patterns1"):
        assert got[name] == pytest.approx(want[name], abs=COSINE_TOL), name
    low, high = want["lp2_bounds"]
    assert low - 1e-6 <= got["local_patterns2"] <= high + 1e-6
    assert got["local_patterns"] == pytest.approx(
        0.5 * got["local_patterns1"] + 0.5 * got["local_patterns2"], abs=1e-6
    )
    return got, want


def test_wang_measures_match_numpy(tiny_params, triple):
    got, want = _check_wang(tiny_params, triple)
    assert want["lp2_bounds"][0] < 1.0  # the style's patches are not all matched: LP2 says so


@pytest.mark.slow
@pytest.mark.weights
def test_wang_measures_match_numpy_real_weights(real_params, triple):
    _check_wang(real_params, triple)


def test_judges_match_numpy(tiny_params, triple):
    output, content, style = triple
    got = quality.measure_one(tiny_params, output, content, style)
    channels = {n: tiny_params["params"][n]["kernel"].shape[-1] for n in sliced.LAYERS}
    directions = {n: np.asarray(sliced.directions(n, c), np.float64) for n, c in channels.items()}
    want = oracle.judges(tiny_params, *(x.astype(np.float64) for x in triple), directions)
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=RELATIVE_TOL), name
    assert got["ssim"] == pytest.approx(oracle.ssim(output, content), abs=1e-5)


def test_sliced_directions_are_fixed_unit_vectors():
    d = np.asarray(sliced.directions("conv3_1", 256))
    assert d.shape == (256, sliced.PROJECTIONS)
    np.testing.assert_allclose(np.linalg.norm(d, axis=0), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(d, np.asarray(sliced.directions("conv3_1", 256)))
    assert not np.allclose(d[:8], np.asarray(sliced.directions("conv4_1", 8)))


def test_sliced_equal_counts_pair_sorted_values():
    """With m = n the quantile interpolation is the identity: W2 of sorted samples."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 5, 7, 8))
    d = np.asarray(sliced.directions("conv1_1", 8), np.float64)
    pa, pb = np.sort(a.reshape(-1, 8) @ d, axis=0), np.sort(b.reshape(-1, 8) @ d, axis=0)
    got = sliced.layer_distance(
        jnp.asarray(a, jnp.float32),
        sliced.sorted_projections(jnp.asarray(b, jnp.float32), "conv1_1"),
        "conv1_1",
    )
    assert float(got) == pytest.approx(np.sqrt(np.mean((pa - pb) ** 2)), rel=1e-5)


def test_histogram_quirk_matches_numpy_histogram():
    """128 bins over each channel's own 8-bit min-max, numpy.histogram's edges (what plt.hist
    calls); a constant channel lands in bin 64 as numpy puts it."""
    rng = np.random.default_rng(0)
    image = np.rint(rng.random((17, 23, 3)) * 255) / 255
    image[..., 1] = np.rint(np.clip(image[..., 1], 0.2, 0.6) * 255) / 255  # own range, not 0-255
    image[..., 2] = 7 / 255  # constant
    got = np.asarray(histogram.channel_histograms(jnp.asarray(image, jnp.float32), "official"))
    for c in range(3):
        counts, _ = np.histogram(np.rint(image[..., c] * 255).ravel(), bins=128)
        np.testing.assert_array_equal(got[c], counts)
    fixed = np.asarray(histogram.channel_histograms(jnp.asarray(image, jnp.float32), "corrected"))
    for c in range(3):
        counts, _ = np.histogram(image[..., c].ravel(), bins=128, range=(0, 1))
        np.testing.assert_array_equal(fixed[c], counts)


def test_official_input_through_the_weights_preprocessing(tiny_params):
    """The official network input (RGB x255 minus the BGR mean, unswapped) reaches the network
    through nstjax.vgg.preprocess, for the Caffe convention and for an arbitrary one."""
    image = _images(4)[0]
    want = image.astype(np.float64) * 255 - oracle.OFFICIAL_MEAN
    arbitrary = {
        "scale": jnp.float32(2.0),
        "mean": jnp.asarray([0.1, 0.2, 0.3]),
        "std": jnp.asarray([0.5, 2.0, 4.0]),
        "channel_order": jnp.asarray([1, 2, 0], jnp.int32),
    }
    for params in (tiny_params, {**tiny_params, "preprocess": arbitrary}):
        fed = vgg.preprocess(params, protocol.official_input(params, jnp.asarray(image)))
        np.testing.assert_allclose(np.asarray(fed), want, atol=1e-3)


def test_vmapped_batch_equals_one_at_a_time(tiny_params):
    outputs, contents = _images(5, n=3), _images(6, n=3)
    # Two distinct styles (each its own group) at the shape of ``triple``'s style: one image at a
    # time is then the program test_wang_measures_match_numpy compiled.
    styles = [_images(7, size=(40, 36))[0], _images(8, size=(40, 36))[0]]
    batch = quality.measure(tiny_params, outputs, contents, [styles[0], styles[1], styles[0]])
    for i, s in enumerate([0, 1, 0]):
        one = quality.measure_one(tiny_params, outputs[i], contents[i], styles[s])
        for name in quality.MEASURE_NAMES:
            assert batch[name][i] == pytest.approx(one[name], rel=1e-4, abs=1e-5), name


def test_names_select_and_order(tiny_params, triple):
    got = quality.measure_one(tiny_params, *triple, names=["ssim", "content_fidelity"])
    assert list(got) == ["content_fidelity", "ssim"]


def test_identical_images_score_perfectly(tiny_params):
    image = _images(9)[0]
    got = quality.measure_one(tiny_params, image, image, image, protocol="corrected")
    for name in ("content_fidelity", "global_effects", "local_patterns", "ssim"):
        assert got[name] == pytest.approx(1.0, abs=1e-5), name
    assert got["content_distance"] == 0.0 and got["psnr"] == np.inf


@pytest.mark.parametrize(
    "change",
    [
        lambda o, c, s: (o, c[:, :-1], s),  # content of another size
        lambda o, c, s: (o, c, []),  # a style short
        lambda o, c, s: (o, c, [s[0][..., :2]]),  # two channels
        lambda o, c, s: (o[:, :16, :16], c[:, :16, :16], s),  # too small
    ],
)
def test_bad_shapes_raise(tiny_params, change):
    outputs, contents = _images(1, n=1), _images(2, n=1)
    with pytest.raises(NstjaxError):
        quality.measure(tiny_params, *change(outputs, contents, [_images(3)[0]]))


def test_unknown_names_and_protocol_raise(tiny_params, triple):
    with pytest.raises(NstjaxError, match="known: content_fidelity, global_effects"):
        quality.measure_one(tiny_params, *triple, names="ssim,sharpness")
    with pytest.raises(NstjaxError, match="protocol"):
        quality.measure_one(tiny_params, *triple, protocol="paper")


def test_measures_are_listed_once_with_a_direction():
    assert len(set(quality.MEASURE_NAMES)) == len(quality.MEASURES)
    assert quality.HIGHER_IS_BETTER["style_distance"] is False
    assert quality.HIGHER_IS_BETTER["content_fidelity"] is True
