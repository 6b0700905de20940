"""Resampling float images in floating point (numpy and Pillow only, no JAX).

:func:`resize` and :func:`resize_long_side` resample each channel as a Pillow mode ``"F"``
(float32) image with the Lanczos filter, so no 8-bit quantisation happens between steps;
:func:`long_side_shape` is the shape a longer side of ``size`` pixels gives.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["check_size", "long_side_shape", "resize", "resize_long_side"]

_RESAMPLE = Image.Resampling.LANCZOS


def check_size(size: int) -> None:
    """Raises ValueError unless ``size`` (a longer side, in pixels) is a positive integer."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"image size must be a positive integer, got {size!r}")


def long_side_shape(shape: tuple[int, ...], size: int) -> tuple[int, int]:
    """The (height, width) that scales ``shape`` so that its longer side is ``size``.

    Args:
        shape: ``(H, W)`` or ``(H, W, C)``; only the first two entries are used.
        size: the wanted length of the longer side, in pixels.

    Returns:
        ``(h, w)``: the longer side is exactly ``size``, the shorter is rounded to the nearest
        integer (halves up) and is at least 1.

    Raises:
        ValueError: ``size`` is not a positive integer or ``shape`` has a zero side.
    """
    check_size(size)
    height, width = int(shape[0]), int(shape[1])
    if height < 1 or width < 1:
        raise ValueError(f"cannot scale an empty image of shape {tuple(shape)}")
    size = int(size)
    if height >= width:
        return size, max(1, int(np.floor(width * size / height + 0.5)))
    return max(1, int(np.floor(height * size / width + 0.5))), size


def resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resamples an image to ``shape`` in floating point, with antialiasing.

    Each channel is resampled as a Pillow mode ``"F"`` (float32) image with the Lanczos filter,
    whose support widens when downscaling, so there is no aliasing and no 8-bit quantisation.
    The result is clipped to the value range of the input, which removes Lanczos ringing
    overshoot (and keeps a constant image exactly constant).

    Args:
        image: float array ``[H, W, C]`` or ``[H, W]``.
        shape: the new ``(height, width)``.

    Returns:
        A float32 array of shape ``[height, width, C]`` (or ``[height, width]``).

    Raises:
        ValueError: ``image`` is not 2-D or 3-D or ``shape`` is not two positive integers.
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim not in (2, 3) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"expected an image of shape [H, W] or [H, W, C], got {arr.shape}")
    if len(shape) != 2:
        raise ValueError(f"shape must be (height, width), got {shape!r}")
    height, width = (int(s) for s in shape)
    if height < 1 or width < 1:
        raise ValueError(f"shape must be two positive integers, got {shape!r}")
    if arr.shape[:2] == (height, width):
        return arr.copy()

    def resample(channel: np.ndarray) -> np.ndarray:
        img = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32))
        return np.asarray(img.resize((width, height), _RESAMPLE), dtype=np.float32)

    if arr.ndim == 2:
        out = resample(arr)
    else:
        out = np.stack([resample(arr[:, :, c]) for c in range(arr.shape[2])], axis=2)
    if arr.size and np.all(np.isfinite(arr)):
        out = np.clip(out, arr.min(), arr.max())
    return out.astype(np.float32, copy=False)


def resize_long_side(image: np.ndarray, size: int) -> np.ndarray:
    """Resizes ``image`` (see :func:`resize`) so that its longer side is ``size`` pixels.

    Args:
        image: float array ``[H, W, C]`` or ``[H, W]``.
        size: the wanted length of the longer side; up- or down-scaling as needed.

    Returns:
        A float32 array with the aspect ratio kept (see :func:`long_side_shape`).

    Raises:
        ValueError: ``size`` is not a positive integer or ``image`` has the wrong shape.
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim not in (2, 3):
        raise ValueError(f"expected an image of shape [H, W] or [H, W, C], got {arr.shape}")
    return resize(arr, long_side_shape(arr.shape, size))
