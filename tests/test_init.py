"""Initial images (nstjax.init): statistics of the noise against its formula, seeds, the kinds."""

import jax
import numpy as np
import pytest

from nstjax import init, vgg
from nstjax.errors import NstjaxError

SHAPE = (48, 40)
# The ImageNet mean RGB of the Caffe VGG (Simonyan & Zisserman), written here independently.
IMAGENET_MEAN_RGB = np.array([123.68, 116.779, 103.939]) / 255.0


def _content(seed=0):
    return np.random.default_rng(seed).random((*SHAPE, 3)).astype(np.float32)


@pytest.mark.parametrize("noise_scale", [1.0, 8.0])
def test_noise_is_the_mean_colour_plus_gaussian_noise_in_grey_levels(noise_scale):
    """Per channel: mean = the ImageNet mean, standard deviation = noise_scale / 255; and the
    deviations are Gaussian (their kurtosis is 3), not uniform (1.8)."""
    image = init.initial_image("noise", _content(), None, seed=3, noise_scale=noise_scale)
    assert image.shape == (*SHAPE, 3) and image.dtype == np.float32
    n = SHAPE[0] * SHAPE[1]
    sigma = noise_scale / 255.0
    deviation = image.reshape(-1, 3).astype(np.float64) - IMAGENET_MEAN_RGB
    # mean: within 5 standard errors; std: within 10% (n = 1920 per channel)
    np.testing.assert_array_less(np.abs(deviation.mean(axis=0)), 5 * sigma / np.sqrt(n))
    np.testing.assert_allclose(deviation.std(axis=0), sigma, rtol=0.1)
    kurtosis = np.mean(deviation**4, axis=0) / np.mean(deviation**2, axis=0) ** 2
    np.testing.assert_allclose(kurtosis, 3.0, atol=0.5)
    # neighbouring pixels are independent
    corr = np.corrcoef(deviation[:-1, 0], deviation[1:, 0])[0, 1]
    assert abs(corr) < 0.1


def test_noise_scale_zero_is_the_flat_mean_colour():
    image = init.initial_image("noise", _content(), None, seed=0, noise_scale=0.0)
    np.testing.assert_allclose(image, np.broadcast_to(IMAGENET_MEAN_RGB, image.shape), atol=1e-7)


def test_noise_is_clipped_to_the_valid_range():
    image = init.initial_image("noise", _content(), None, seed=0, noise_scale=500.0)
    assert image.min() == 0.0 and image.max() == 1.0


def test_noise_is_centred_on_the_weights_mean_colour():
    """The centre is what the weights' preprocessing subtracts (read from params)."""
    params = vgg.init_params(jax.random.key(0))
    np.testing.assert_allclose(init.mean_colour(params), IMAGENET_MEAN_RGB, rtol=1e-6)
    np.testing.assert_allclose(init.mean_colour(None), IMAGENET_MEAN_RGB, rtol=1e-12)
    grey = np.array([0.5, 0.25, 0.75])
    image = init.initial_image("noise", _content(), None, 0, 0.0, mean_rgb=grey)
    np.testing.assert_allclose(image[3, 5], grey, atol=1e-7)


@pytest.mark.parametrize("kind", ["noise", "uniform"])
def test_noise_is_determined_by_the_seed(kind):
    a = init.initial_image(kind, _content(), None, seed=7, noise_scale=4.0)
    b = init.initial_image(kind, _content(1), None, seed=7, noise_scale=4.0)
    c = init.initial_image(kind, _content(), None, seed=8, noise_scale=4.0)
    np.testing.assert_array_equal(a, b)  # the content's pixels do not matter, only its shape
    assert np.mean(a != c) > 0.99


def test_noise_scale_multiplies_the_same_draw():
    """One seed, two amplitudes: the deviations are proportional (same underlying draw)."""
    small = init.initial_image("noise", _content(), None, 5, 2.0).astype(np.float64)
    large = init.initial_image("noise", _content(), None, 5, 6.0).astype(np.float64)
    np.testing.assert_allclose(
        large - IMAGENET_MEAN_RGB, 3 * (small - IMAGENET_MEAN_RGB), atol=1e-6
    )


def test_uniform_covers_the_full_range():
    image = init.initial_image("uniform", _content(), None, seed=0)
    assert 0.0 <= image.min() < 0.01 and 0.99 < image.max() <= 1.0
    np.testing.assert_allclose(image.reshape(-1, 3).mean(axis=0), 0.5, atol=0.03)
    np.testing.assert_allclose(image.reshape(-1, 3).std(axis=0), np.sqrt(1 / 12), rtol=0.05)


def test_content_style_and_array_kinds():
    content = _content()
    np.testing.assert_array_equal(init.initial_image("content", content, None, 0), content)
    style = np.zeros((10, 20, 3), np.float32)
    style[:, 10:] = 1.0  # left half black, right half white: resizing keeps the halves
    out = init.initial_image("style", content, style, 0)
    assert out.shape == content.shape
    assert out[:, :15].max() < 0.05 and out[:, -15:].min() > 0.95
    same = np.full(content.shape, 0.3, np.float32)
    np.testing.assert_array_equal(init.initial_image(same, content, None, 0), same)
    small = np.full((5, 4, 3), 0.3, np.float32)
    np.testing.assert_allclose(init.initial_image(small, content, None, 0), same, atol=1e-6)


@pytest.mark.parametrize(
    "kind, scale, match",
    [
        ("gaussian", 1.0, "init must be one of content, noise, uniform, style"),
        ("noise", -1.0, "noise-scale must be finite and >= 0"),
        ("noise", float("nan"), "noise-scale"),
        (np.zeros((4, 4)), 1.0, r"init image must be \[H, W, 3\]"),
        ("style", 1.0, "needs a style image"),
    ],
)
def test_bad_inputs_are_one_line_errors(kind, scale, match):
    with pytest.raises(NstjaxError, match=match) as info:
        init.initial_image(kind, _content(), None, 0, scale)
    assert "\n" not in str(info.value)
