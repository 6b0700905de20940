"""Starting images of the optimisation: the content, the style, noise, or a given image.

``"noise"`` is white noise as the reference implementations draw it: Gaussian noise added in the
network's *preprocessed* input space (RGB -> BGR, x255, minus the ImageNet mean), where zero is
the network's mean colour. So the image is that mean colour plus Gaussian noise of standard
deviation ``noise_scale`` grey levels (0-255 units). The sources:

- Gatys' own code, leongatys/NeuralImageSynthesis ``ExampleNotebooks/BasicStyleTransfer.ipynb``
  (commit cced0b9), cell ``In [5]``: ``make_torch_init(init_file_name,
  randn(*imgs_torch['content'].shape))`` on images preprocessed as
  ``255 * (image[:,:,::-1] - imagenet_mean)`` (``preprocess``, cell ``In [2]``): standard
  deviation **1** grey level.
- leongatys/PytorchNeuralStyleTransfer ``NeuralStyleTransfer.ipynb`` (commit be6c8e2), cell ``In [6]``,
  the commented "random init": ``torch.randn(content_image.size())`` on images preprocessed by
  ``prep`` (cell ``In [4]``: BGR, minus the ImageNet mean, x255): again **1** grey level.
- jcjohnson/neural-style ``neural_style.lua`` (commit 07c4b82) lines 202-203, ``-init random``
  (the default, line 27): ``torch.randn(content_image:size()):float():mul(0.001)`` in the space
  of ``preprocess`` (lines 419-426: BGR, x256, minus the mean pixel): **0.001** grey levels.
- ProGamerGov/neural-style-pt ``neural_style.py`` (commit 7251405) lines 198-200:
  ``torch.randn(C, H, W).mul(0.001)`` in the space of ``preprocess`` (lines 336-344): **0.001**.

The mean colour is therefore the one the network's preprocessing subtracts (for the Caffe weights
the ImageNet mean RGB 123.68, 116.779, 103.939), not the content image's mean: every reference
adds its noise to zero in the preprocessed space. :func:`mean_colour` reads it from the weights.
The default amplitude, :data:`DEFAULT_NOISE_SCALE` = 1, is Gatys' own; the ``neural-style``
preset uses 0.001. ``"uniform"`` is nstjax's former ``"noise"``: uniform over the full [0, 1]
range (about 75x stronger than Gatys' noise).
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.errors import NstjaxError
from nstjax.resample import resize
from nstjax.weights import CAFFE_PREPROCESS

INIT_KINDS = ("content", "noise", "uniform", "style")
"""The named initialisations; an ``[H, W, 3]`` array is accepted as well."""

DEFAULT_NOISE_SCALE = 1.0
"""Standard deviation of ``"noise"`` in grey levels (0-255): Gatys' code (module docstring)."""

CAFFE_MEAN_RGB = np.asarray(CAFFE_PREPROCESS["mean_rgb"], np.float64) / CAFFE_PREPROCESS["scale"]
"""The ImageNet mean colour the Caffe VGG-19 subtracts, RGB in [0, 1]."""


def mean_colour(params: Mapping[str, Any] | None = None) -> np.ndarray:
    """The colour the network's preprocessing maps to zero, RGB ``[3]`` in [0, 1].

    Args:
        params: VGG parameters carrying ``"preprocess"`` (:mod:`nstjax.vgg`); ``None`` gives the
            Caffe convention's :data:`CAFFE_MEAN_RGB`.
    """
    if params is None:
        return CAFFE_MEAN_RGB.copy()
    pre = params["preprocess"]
    return np.asarray(pre["mean"], np.float64) / float(pre["scale"])


def gaussian_noise(
    shape: tuple[int, int],
    seed: int,
    noise_scale: float = DEFAULT_NOISE_SCALE,
    mean_rgb: np.ndarray = CAFFE_MEAN_RGB,
) -> np.ndarray:
    """``mean_rgb + noise_scale / 255 * N(0, 1)``, clipped to [0, 1], ``[H, W, 3]`` float32.

    Args:
        shape: ``(height, width)``.
        seed: seeds ``jax.random.key`` (the same image on every platform).
        noise_scale: standard deviation in grey levels (0-255 units); 0 gives the flat mean colour.
        mean_rgb: the colour the noise is centred on, RGB in [0, 1] (:func:`mean_colour`).
    """
    normal = np.asarray(jax.random.normal(jax.random.key(seed), (*shape, 3), jnp.float32))
    image = np.asarray(mean_rgb, np.float64) + (noise_scale / 255.0) * normal
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def uniform_noise(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Uniform noise over [0, 1], ``[H, W, 3]`` float32 (nstjax's former ``"noise"``)."""
    return np.asarray(jax.random.uniform(jax.random.key(seed), (*shape, 3), jnp.float32))


def check_init(kind: Any, noise_scale: float = DEFAULT_NOISE_SCALE) -> None:
    """Raises NstjaxError when ``kind`` is neither a known name nor an image, or the scale is bad."""
    if isinstance(kind, str):
        if kind not in INIT_KINDS:
            raise NstjaxError(
                f"init must be one of {', '.join(INIT_KINDS)} or an image, got {kind!r}"
            )
    else:
        shape = np.shape(kind)
        if len(shape) != 3 or shape[-1] != 3:
            raise NstjaxError(f"init image must be [H, W, 3], got shape {shape}")
    if not (noise_scale >= 0 and np.isfinite(noise_scale)):
        raise NstjaxError(f"noise-scale must be finite and >= 0, got {noise_scale}")


def initial_image(
    kind: Any,
    content: np.ndarray,
    style_image: np.ndarray | None,
    seed: int,
    noise_scale: float = DEFAULT_NOISE_SCALE,
    *,
    mean_rgb: np.ndarray = CAFFE_MEAN_RGB,
) -> np.ndarray:
    """A run's starting image, shaped like ``content``.

    Args:
        kind: ``"content"``, ``"noise"`` (:func:`gaussian_noise`: the network's mean colour plus
            Gaussian noise of ``noise_scale`` grey levels, as the reference implementations),
            ``"uniform"`` (:func:`uniform_noise`), ``"style"`` (``style_image`` resized to the
            content's shape), or an ``[H, W, 3]`` array in [0, 1] (resized to fit).
        content: the content image ``[H, W, 3]`` in [0, 1], at the output size.
        style_image: the style image as the run sees it (needed for ``"style"`` only).
        seed: seeds the noise.
        noise_scale: standard deviation of ``"noise"`` in grey levels (0-255 units).
        mean_rgb: centre of ``"noise"``, RGB in [0, 1]; pass :func:`mean_colour` of the weights.

    Returns:
        ``[H, W, 3]`` float32 in [0, 1].

    Raises:
        NstjaxError: an unknown kind, a bad ``noise_scale``, or ``"style"`` without a style image.
    """
    check_init(kind, noise_scale)
    shape = content.shape[:2]
    if isinstance(kind, str):
        if kind == "content":
            return np.asarray(content, np.float32)
        if kind == "noise":
            return gaussian_noise(shape, seed, noise_scale, mean_rgb)
        if kind == "uniform":
            return uniform_noise(shape, seed)
        if style_image is None:
            raise NstjaxError("init 'style' needs a style image")
        return resize(np.asarray(style_image, np.float32), shape)
    image = np.asarray(kind, np.float32)
    return image if image.shape[:2] == shape else resize(image, shape)
