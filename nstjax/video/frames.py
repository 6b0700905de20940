"""Reading and writing clips: a folder of frames (always), or a video file through imageio with
imageio-ffmpeg (the ``video`` extra)."""

import contextlib
import json
import re
import warnings
from pathlib import Path

import numpy as np

from nstjax import atomic, image, resample, validate
from nstjax.errors import NstjaxError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv")
"""Suffixes read and written as video files; anything else is a folder of frames."""
DEFAULT_FPS = 24.0
"""Frame rate of a written video when the input gives none (a folder of frames)."""
FRAME_NAME = "frame_{:05d}.png"
"""How the frames of an output folder are named."""
FRAME_PATTERN = re.compile(r"frame_\d{5}\.png")
"""What :data:`FRAME_NAME` makes: the only names ever removed from an output folder."""
WRITTEN_LIST = ".nstjax-video-frames.json"
"""The file in an output folder listing the frames ``nstjax video`` wrote there (hidden, so a
folder of frames read back as a clip skips it)."""


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video file (by its suffix) rather than a folder of frames."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _imageio(what: str):
    try:
        import imageio.v3 as iio
        import imageio_ffmpeg  # noqa: F401  (the codec binary)
    except ImportError as e:
        raise NstjaxError(
            f"{what}: video files need imageio and imageio-ffmpeg: pip install 'nstjax[video]' "
            "(or use a folder of frames)"
        ) from e
    return iio


@contextlib.contextmanager
def _quiet_fork():
    """imageio-ffmpeg starts ffmpeg as a subprocess, which Python warns about in a process with
    JAX's threads; the child execs ffmpeg at once, so the warning does not apply."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning
        )
        yield


def _read_video(path: Path, label: str) -> tuple[list[np.ndarray], float]:
    iio = _imageio(label)
    try:
        with _quiet_fork():
            frames = iio.imread(path, plugin="FFMPEG")
            fps = float(iio.immeta(path, plugin="FFMPEG").get("fps") or DEFAULT_FPS)
    except Exception as e:  # imageio raises OSError, RuntimeError, ValueError, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise NstjaxError(f"{label}: cannot read it as a video ({reason})") from e
    return [np.asarray(f[..., :3], np.float32) / 255.0 for f in frames], fps


def read_clip(
    path: str | Path, size: int | None = None, what: str = "--content"
) -> tuple[np.ndarray, float]:
    """The frames of a clip, ``[N, H, W, 3]`` float32 in [0, 1], and its frame rate.

    Args:
        path: a folder of frames (sorted by name) or a video file (:data:`VIDEO_SUFFIXES`).
        size: longer side the frames are resized to (``None``: as they are).
        what: how the clip is called in error messages.

    Raises:
        NstjaxError: the clip does not exist or cannot be read, has fewer than two frames, or
            its frames differ in size; the message names the clip (and the frame).
    """
    path = Path(path)
    label = f"{what} {path}"
    if not path.exists():
        raise NstjaxError(f"{label}: no such file or folder")
    if path.is_dir():
        files = image.list_images(path, what)
        frames = [image.load_image(f, None, what) for f in files]
        names = [f.name for f in files]
        fps = DEFAULT_FPS
    else:
        frames, fps = _read_video(path, label)
        names = [f"frame {i}" for i in range(len(frames))]
    if len(frames) < 2:
        raise NstjaxError(f"{label}: a clip needs at least 2 frames, found {len(frames)}")
    for name, frame in zip(names, frames):
        if frame.shape != frames[0].shape:
            raise NstjaxError(
                f"{label}: {name} is {frame.shape[1]}x{frame.shape[0]} px, the first frame "
                f"{frames[0].shape[1]}x{frames[0].shape[0]}; all frames must have one size"
            )
    if size is not None:
        frames = [resample.resize_long_side(f, size) for f in frames]
    return np.stack(frames).astype(np.float32), fps


def first_frame_shape(path: str | Path, what: str = "--content") -> tuple[int, int] | None:
    """The ``(height, width)`` of a clip's first frame from its header, without reading the
    clip (``None`` when the clip cannot be read: :func:`read_clip` says why)."""
    path = Path(path)
    if path.is_dir():
        files = image.list_images(path, what)
        return image.image_shape(files[0], what) if files else None
    if not (path.is_file() and is_video(path)):
        return None
    iio = _imageio(f"{what} {path}")
    try:
        with _quiet_fork():
            width, height = iio.immeta(path, plugin="FFMPEG")["size"]
    except Exception:  # unreadable: read_clip reports it in one line
        return None
    return int(height), int(width)


def check_output(path: str | Path) -> None:
    """Checks that a clip can be written at ``path`` (a video's codec is installed), before any
    work is done."""
    path = Path(path)
    if is_video(path):
        _imageio(f"--output {path}")
    elif path.suffix and path.suffix.lower() in image.IMAGE_SUFFIXES:
        raise NstjaxError(
            f"--output {path}: a clip is written as a video ({', '.join(VIDEO_SUFFIXES)}) or a "
            "folder of frames, not one image"
        )
    if path.exists() and is_video(path) == path.is_dir():
        raise NstjaxError(
            f"--output {path}: exists and is not a {'file' if is_video(path) else 'folder'}"
        )
    if is_video(path):
        validate.writable_location(path, "--output")
    else:
        validate.output_folder(path, "--output")


def written_frames(folder: str | Path) -> list[str]:
    """The frame names :data:`WRITTEN_LIST` in ``folder`` records, those that match
    :data:`FRAME_PATTERN` only (an unreadable or foreign list records none)."""
    try:
        names = json.loads((Path(folder) / WRITTEN_LIST).read_text("utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and FRAME_PATTERN.fullmatch(n)]


def _write_folder(folder: Path, frames: np.ndarray) -> None:
    """Writes ``frames`` as :data:`FRAME_NAME` files and removes the frames an earlier, longer
    clip left there; only files this function recorded in :data:`WRITTEN_LIST` are removed.

    The list first records the old and the new frames, then the frames are written (each
    atomically), then the old frames beyond the new clip are removed and the list records the new
    ones: an interruption at any point leaves every frame this wrote recorded, so a later write
    removes it, and no file the list does not name is ever touched.
    """
    names = [FRAME_NAME.format(i) for i in range(len(frames))]
    old = written_frames(folder)
    atomic.write_text(folder / WRITTEN_LIST, json.dumps(sorted(set(old) | set(names))))
    for name, frame in zip(names, frames):
        image.save_image(folder / name, frame, "output frame")
    for name in sorted(set(old) - set(names)):
        (folder / name).unlink(missing_ok=True)
    atomic.write_text(folder / WRITTEN_LIST, json.dumps(names))


def write_clip(path: str | Path, frames: np.ndarray, fps: float = DEFAULT_FPS) -> None:
    """Writes frames in [0, 1] as a video file or as a folder of PNG frames, each atomically.

    A folder that already holds frames this function wrote (an ``--overwrite``) keeps none of
    them beyond the new clip; other files in it are left alone.
    """
    path = Path(path)
    if not is_video(path):
        _write_folder(path, frames)
        return
    iio = _imageio(f"--output {path}")
    pixels = np.stack([image.to_uint8(f) for f in frames])
    try:
        with atomic.atomic_path(path) as tmp, _quiet_fork():
            iio.imwrite(tmp, pixels, plugin="FFMPEG", fps=fps, macro_block_size=1)
    except Exception as e:
        raise NstjaxError(f"--output {path}: cannot write the video ({e})") from e
