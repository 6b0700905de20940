"""Content images for training: a seeded, resumable order, square crops, a grain pipeline.

The order is a pure function of ``(seed, position)``: position ``p`` of the stream is image
``permutation(seed, p // n)[p % n]`` (a fresh permutation every epoch, :func:`position_index`),
and its crop is drawn from a generator seeded by ``(seed, p)``. Step ``s`` takes positions
``s*B .. s*B + B - 1``; a process of a multi-process run loads its rows of them.

:func:`training_batches` is that stream as a ``grain.MapDataset`` (random access: element ``s``
is step ``s``'s batch); :func:`batch_iterator` reads it ahead with threads, or with worker
processes, and its state (grain's ``get_state``) is saved in each checkpoint
(:mod:`nstjax.feedforward.checkpoint`), so a run resumed at step ``s`` sees exactly the batches an
uninterrupted run would, whoever loads them.
"""

import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grain
import numpy as np
from absl import flags

from nstjax import image, resample
from nstjax.errors import NstjaxError

READ_AHEAD = 4  # batches each reading process loads ahead, one thread each (Pillow frees the GIL)


def split_content(content_dir: str | os.PathLike, holdout: int) -> tuple[list[Path], list[Path]]:
    """The content folder's images, split into (training, held-out): the last ``holdout`` by name.

    Raises:
        NstjaxError: the folder is missing or empty, or holds no more than ``holdout`` images.
    """
    folder = Path(content_dir)
    if not folder.is_dir():
        raise NstjaxError(f"--content-dir '{content_dir}': no such folder")
    files = image.list_images(folder, "content image")
    if len(files) <= holdout:
        raise NstjaxError(
            f"--content-dir '{content_dir}': {len(files)} image(s), need more than "
            f"--holdout {holdout}"
        )
    cut = len(files) - holdout
    return files[:cut], files[cut:]


def position_index(position: int, count: int, seed: int) -> int:
    """Which of ``count`` images the stream's ``position`` holds (a new permutation per epoch)."""
    epoch, offset = divmod(position, count)
    return int(np.random.default_rng([seed, epoch]).permutation(count)[offset])


def square(pixels: np.ndarray, size: int, crop: str, rng: np.random.Generator) -> np.ndarray:
    """A ``[size, size, 3]`` training image from ``pixels`` ``[H, W, 3]``.

    Args:
        pixels: the image, float32 in [0, 1].
        size: the side of the result.
        crop: ``"resize"`` warps the whole image; ``"random"``/``"center"`` resize its shorter
            side to ``size`` and cut a random/centred square.
        rng: draws the random crop's offset.
    """
    if crop == "resize":
        return resample.resize(pixels, (size, size))
    h, w = pixels.shape[:2]
    scale = size / min(h, w)
    shape = (max(size, round(h * scale)), max(size, round(w * scale)))
    pixels = resample.resize(pixels, shape)
    dy, dx = shape[0] - size, shape[1] - size
    if crop == "random":
        top, left = int(rng.integers(0, dy + 1)), int(rng.integers(0, dx + 1))
    else:
        top, left = dy // 2, dx // 2
    return pixels[top : top + size, left : left + size]


def load_square(path: Path, size: int, crop: str, rng: np.random.Generator) -> np.ndarray:
    """:func:`square` of the image file ``path`` (a bad file is a one-line NstjaxError)."""
    return square(image.load_image(path, what="content image"), size, crop, rng)


def _load_position(
    files: tuple[Path, ...], size: int, crop: str, seed: int, position: int
) -> np.ndarray:
    """The training image at stream ``position``."""
    index = position_index(position, len(files), seed)
    rng = np.random.default_rng([seed, position, 1])
    return load_square(files[index], size, crop, rng)


def _position(batch_size: int, rows: range, element: int) -> int:
    """The stream position of a process's ``element``-th image (its rows of each step)."""
    step, row = divmod(element, len(rows))
    return step * batch_size + rows[row]


def training_batches(
    files: Sequence[Path],
    size: int,
    batch_size: int,
    crop: str,
    seed: int,
    rows: range | None = None,
) -> grain.MapDataset:
    """The endless stream of training batches; element ``s`` is step ``s``'s batch.

    Args:
        files: the training images.
        size: crop side.
        batch_size: images per step (all processes together).
        crop: see :func:`square`.
        seed: seeds the order and the crops.
        rows: the rows of every batch this process loads (``None``: all).

    Returns:
        A ``grain.MapDataset`` of float32 arrays ``[len(rows), size, size, 3]``.
    """
    rows = range(batch_size) if rows is None else rows
    elements = grain.MapDataset.range(sys.maxsize)
    positions = elements.map(functools.partial(_position, batch_size, rows))
    load = functools.partial(_load_position, tuple(files), size, crop, seed)
    return positions.map(load).batch(len(rows))


def batch_iterator(batches: grain.MapDataset, workers: int) -> grain.DatasetIterator:
    """An iterator over ``batches`` from the start, reading ahead; its ``get_state`` /
    ``set_state`` (or :class:`~nstjax.feedforward.checkpoint.Checkpoints`) save and restore
    its position.

    Args:
        batches: :func:`training_batches`.
        workers: worker processes that load batches (each its own slice of the steps,
            interleaved back in order); ``0`` loads them in this process. The batches are the
            same either way; a saved state restores only into an iterator with as many workers.
    """
    read = grain.ReadOptions(num_threads=READ_AHEAD, prefetch_buffer_size=READ_AHEAD)
    stream = batches.to_iter_dataset(read)
    if workers:
        if not flags.FLAGS.is_parsed():  # grain's worker start reads its absl flags
            flags.FLAGS.mark_as_parsed()
        options = grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=1)
        stream = stream.mp_prefetch(options)
    return iter(stream)
