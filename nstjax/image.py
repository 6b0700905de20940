"""Image input and output at the edges of the package (numpy and Pillow only, no JAX).

Everything inside the package works on float32 RGB arrays of shape ``[H, W, 3]`` with values
in ``[0, 1]``. This module turns files into such arrays and back:

* :func:`load_image` reads anything Pillow reads (JPEG, PNG, WebP, TIFF, BMP, ...; grayscale,
  palette, alpha, 16-bit grayscale), applies the EXIF orientation and composites any alpha
  channel over a white background.
* :func:`load_image`'s ``size`` resamples in floating point (:mod:`nstjax.resample`).
* :func:`save_image` writes PNG or JPEG atomically: a reader never sees a partial file.
* :func:`list_images` expands files and folders given on the command line into image files.

Problems with the user's files are raised as :class:`~nstjax.errors.NstjaxError` with a
one-line message that names the file and says what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from nstjax.atomic import atomic_path
from nstjax.errors import NstjaxError, one_line
from nstjax.resample import check_size, resize_long_side

__all__ = [
    "IMAGE_SUFFIXES",
    "list_images",
    "load_image",
    "save_image",
    "to_uint8",
]

#: Suffixes (lower case) of the files :func:`list_images` picks up from a folder.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")

#: Suffix (lower case) -> Pillow format name, for :func:`save_image`.
_SAVE_FORMATS: dict[str, str] = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}

#: JPEG quality used by :func:`save_image`.
JPEG_QUALITY = 95

# Modes whose samples are wider than 8 bits; they are converted to float without Pillow's
# (8-bit) ``convert``.
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def _label(what: str, path: str | os.PathLike) -> str:
    return f"{what} '{os.fspath(path)}'"


def _normalise_mode(img: Image.Image) -> Image.Image:
    """Converts a decoded Pillow image to one of L, LA, RGB, RGBA or a wide (>8-bit) mode."""
    mode = img.mode
    if mode in _WIDE_MODES:
        # 16/32-bit grayscale and float: kept as is (a tRNS colour key, if any, is ignored).
        return img
    if mode in ("L", "LA", "RGB", "RGBA"):
        if mode in ("L", "RGB") and img.has_transparency_data:
            # A PNG colour key (tRNS): Pillow turns it into an alpha channel.
            return img.convert("RGBA")
        return img
    if img.has_transparency_data:
        # P with transparency, PA, La, RGBa (premultiplied), ...
        return img.convert("RGBA")
    # 1, P, CMYK (naively, ICC profiles are not applied), YCbCr, HSV, ...
    return img.convert("RGB")


def _to_float_rgb(img: Image.Image) -> np.ndarray:
    """Pixel values of a normalised image as float32 RGB in [0, 1], alpha composited on white."""
    mode = img.mode
    arr = np.asarray(img)
    if mode.startswith("I;16"):
        gray = (arr.astype(np.float64) / 65535.0).astype(np.float32)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "I":
        # 32-bit integer grayscale: in practice 16-bit data (Pillow's mode for many 16-bit
        # files), so full scale is 65535; anything outside is clipped.
        gray = np.clip(arr.astype(np.float64) / 65535.0, 0.0, 1.0).astype(np.float32)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        # Float grayscale (e.g. a float TIFF): taken to be in [0, 1]; NaN becomes 0.
        gray = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        gray = np.clip(gray, 0.0, 1.0)
        return np.repeat(gray[:, :, None], 3, axis=2)

    values = (arr.astype(np.float64) / 255.0).astype(np.float32)
    if mode == "L":
        return np.repeat(values[:, :, None], 3, axis=2)
    if mode == "RGB":
        return values
    if mode == "LA":
        color = np.repeat(values[:, :, :1], 3, axis=2)
        alpha = values[:, :, 1:2]
    elif mode == "RGBA":
        color = values[:, :, :3]
        alpha = values[:, :, 3:4]
    else:  # pragma: no cover - _normalise_mode only returns the modes above
        raise AssertionError(f"unexpected image mode {mode!r}")
    # Straight (non-premultiplied) alpha over an opaque white background.
    out = color * alpha + (np.float32(1.0) - alpha)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _open(path: Path, label: str) -> Image.Image:
    """Opens an image file lazily; NstjaxError for a folder, a missing, empty, unreadable or
    unidentifiable file, or a decompression bomb."""
    try:
        if path.is_dir():
            raise NstjaxError(f"{label}: is a folder, not an image file")
        if not path.exists():
            raise NstjaxError(f"{label}: no such file")
        if path.stat().st_size == 0:
            raise NstjaxError(f"{label}: file is empty")
    except OSError as e:
        raise NstjaxError(f"{label}: cannot read ({one_line(e)})") from e
    try:
        return Image.open(path)
    except Image.UnidentifiedImageError as e:
        raise NstjaxError(
            f"{label}: not an image Pillow can read (cannot identify image file)"
        ) from e
    except OSError as e:
        reason = e.strerror or one_line(e)
        raise NstjaxError(f"{label}: cannot read ({reason})") from e
    except Image.DecompressionBombError as e:
        raise NstjaxError(f"{label}: image is too large ({one_line(e)})") from e


def _decode(img: Image.Image, label: str) -> np.ndarray:
    """An opened image's pixels, upright, as float32 RGB; NstjaxError if it does not decode."""
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
        img = _normalise_mode(img)
    except MemoryError:
        raise
    except Exception as e:  # any decoder failure means a corrupt file
        raise NstjaxError(f"{label}: cannot decode image ({one_line(e)})") from e
    if img.width < 1 or img.height < 1:
        raise NstjaxError(f"{label}: image has no pixels ({img.width}x{img.height})")
    return _to_float_rgb(img)


def load_image(path: str | os.PathLike, size: int | None = None, what: str = "image") -> np.ndarray:
    """Reads an image file as float32 RGB in [0, 1].

    Any format and mode Pillow reads is accepted, whatever the file's suffix:

    * the EXIF orientation tag is applied (``PIL.ImageOps.exif_transpose``), so the array is
      upright as a viewer shows it;
    * grayscale (``1``, ``L``) becomes three equal channels, palette images their RGB colours;
    * an alpha channel (RGBA, LA, palette or colour-key transparency) is removed by compositing
      the image over an opaque **white** background: ``rgb * a + (1 - a)``;
    * 16-bit grayscale (modes ``I;16*`` and ``I``, e.g. 16-bit PNG and TIFF) keeps its full
      precision (value / 65535); float (mode ``F``) is clipped to [0, 1];
    * CMYK and other modes go through Pillow's ``convert("RGB")`` (ICC profiles are ignored);
    * of a multi-frame file (animated GIF/WebP, multi-page TIFF) only the first frame is read.

    Args:
        path: the image file.
        size: if given, the image is resized (Lanczos, in float) so that its longer side is
            ``size`` pixels, keeping the aspect ratio; this may scale up or down.
        what: how the file is called in error messages, e.g. ``"content image"``.

    Returns:
        A float32 array of shape ``[H, W, 3]`` with values in [0, 1].

    Raises:
        NstjaxError: the file is missing, a folder, empty, unreadable, not an image Pillow can
            identify, or corrupt; the one-line message names the file and the problem.
        ValueError: ``size`` is not a positive integer.
    """
    if size is not None:
        check_size(size)
    label = _label(what, path)
    path = Path(path)
    with _open(path, label) as img:
        image = _decode(img, label)

    if size is not None:
        image = resize_long_side(image, size)
    return image


def image_shape(path: str | os.PathLike, what: str = "image") -> tuple[int, int]:
    """An image file's upright ``(height, width)`` from its header, without decoding it.

    Args:
        path: the image file.
        what: how the file is called in error messages.

    Raises:
        NstjaxError: as :func:`load_image` for a missing or unidentifiable file.
    """
    label = _label(what, path)
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
    except FileNotFoundError as e:
        raise NstjaxError(f"{label}: no such file") from e
    except IsADirectoryError as e:
        raise NstjaxError(f"{label}: is a folder, not an image file") from e
    except Image.UnidentifiedImageError as e:
        raise NstjaxError(
            f"{label}: not an image Pillow can read (cannot identify image file)"
        ) from e
    except (OSError, Image.DecompressionBombError) as e:
        raise NstjaxError(f"{label}: cannot read ({one_line(e)})") from e
    return (width, height) if orientation in (5, 6, 7, 8) else (height, width)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Converts a float image in [0, 1] to uint8: clipped, scaled by 255, rounded to nearest.

    Args:
        image: float array of any shape.

    Returns:
        A uint8 array of the same shape.

    Raises:
        ValueError: the image contains NaN or infinite values.
    """
    arr = np.asarray(image, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("image contains NaN or infinite values")
    return np.rint(np.clip(arr, 0.0, 1.0) * 255.0).astype(np.uint8)


def save_image(path: str | os.PathLike, image: np.ndarray, what: str = "image") -> None:
    """Writes a float image in [0, 1] as PNG or JPEG, atomically.

    Values are clipped to [0, 1] and rounded to 8 bits (:func:`to_uint8`). The format follows
    the suffix (case-insensitive): ``.png`` is PNG, ``.jpg``/``.jpeg`` is JPEG at quality 95
    without chroma subsampling. The file is written under a temporary name beside ``path`` and
    renamed onto it only when complete, so an existing file is replaced whole or not at all
    and no partial file is ever left. Missing parent folders are created.

    Args:
        path: where to write.
        image: float array ``[H, W, 3]``, ``[H, W, 1]`` or ``[H, W]`` (grayscale).
        what: how the file is called in error messages, e.g. ``"output image"``.

    Raises:
        NstjaxError: the suffix is not one of .png, .jpg, .jpeg; the image contains NaN or
            infinite values; or the file cannot be written (permissions, a folder in the
            way, disk full, ...). The message names the path.
        ValueError: ``image`` does not have one of the shapes above.
    """
    label = _label(what, path)
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        shown = f"'{path.suffix}'" if path.suffix else "no suffix"
        raise NstjaxError(
            f"{label}: cannot save with {shown}; use one of {', '.join(_SAVE_FORMATS)}"
        )
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)) or 0 in arr.shape:
        raise ValueError(f"expected an image of shape [H, W, 3] or [H, W], got {arr.shape}")
    try:
        pixels = to_uint8(arr)
    except ValueError as e:
        raise NstjaxError(f"{label}: cannot save, {e}") from e
    img = Image.fromarray(pixels)
    options = {"quality": JPEG_QUALITY, "subsampling": 0} if fmt == "JPEG" else {}
    if path.is_dir():
        raise NstjaxError(f"{label}: cannot write, it is a folder")
    try:
        with atomic_path(path) as tmp:
            img.save(tmp, format=fmt, **options)
    except OSError as e:
        reason = e.strerror or one_line(e)
        raise NstjaxError(f"{label}: cannot write ({reason})") from e


def list_images(
    paths: str | os.PathLike | Iterable[str | os.PathLike], what: str = "image"
) -> list[Path]:
    """Expands files and folders into a list of image files.

    A file is kept as given (whatever its suffix; :func:`load_image` judges its contents). A
    folder becomes the files directly inside it whose suffix (case-insensitive) is in
    :data:`IMAGE_SUFFIXES`, sorted by name; subfolders and hidden files (names starting with
    ``.``, such as macOS ``._x.jpg`` resource forks) are skipped. The order of ``paths`` is
    kept.

    Args:
        paths: one path or several.
        what: how the inputs are called in error messages, e.g. ``"style image"``.

    Returns:
        The image files, as :class:`pathlib.Path`.

    Raises:
        NstjaxError: no paths were given, a path does not exist, or a folder holds no image
            files; the message names the path.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[Path] = []
    given = 0
    for entry in paths:
        given += 1
        label = _label(what, entry)
        path = Path(entry)
        try:
            if path.is_dir():
                files = sorted(
                    (
                        p
                        for p in path.iterdir()
                        if p.suffix.lower() in IMAGE_SUFFIXES
                        and not p.name.startswith(".")
                        and p.is_file()
                    ),
                    key=lambda p: p.name,
                )
                if not files:
                    raise NstjaxError(
                        f"{what} folder '{os.fspath(entry)}': contains no image files "
                        f"({' '.join(IMAGE_SUFFIXES)})"
                    )
                found.extend(files)
            elif path.exists():
                found.append(path)
            else:
                raise NstjaxError(f"{label}: no such file or folder")
        except OSError as e:
            raise NstjaxError(f"{label}: cannot read ({e.strerror or one_line(e)})") from e
    if given == 0:
        raise NstjaxError(f"no {what} given")
    return found
