"""Content images for training: a seeded, resumable order, square crops, a prefetching loader.

The order is a pure function of ``(seed, position)``: position ``p`` of the stream is image
``permutation(seed, p // n)[p % n]`` (a fresh permutation every epoch), and its crop is drawn from
a generator seeded by ``(seed, p)``. Step ``s`` takes positions ``s*B .. s*B + B - 1``, so a run
resumed at step ``s`` sees exactly the batches an uninterrupted run would, whatever the threads do.
"""

import collections
import concurrent.futures
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from nstjax import image, resample
from nstjax.errors import NstjaxError


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


class Loader:
    """Batches ``[B, size, size, 3]`` for consecutive steps, loaded by threads ahead of use.

    Args:
        files: the training images.
        size: crop side.
        batch_size: images per step.
        crop: see :func:`square`.
        seed: seeds the order and the crops.
        workers: loading threads (Pillow decodes and resizes without holding the GIL).
        prefetch: batches loaded ahead of the one being consumed.
        rows: the rows of every batch this loader loads (``None``: all ``batch_size``); a
            process of a multi-process run loads its share.
    """

    def __init__(
        self,
        files: Sequence[Path],
        size: int,
        batch_size: int,
        crop: str,
        seed: int,
        workers: int = 4,
        prefetch: int = 2,
        rows: range | None = None,
    ):
        self.files, self.size, self.batch_size = list(files), size, batch_size
        self.crop, self.seed, self.workers, self.prefetch = crop, seed, workers, prefetch
        self.rows = range(batch_size) if rows is None else rows

    def positions(self, step: int) -> list[int]:
        """The stream positions of this loader's rows of ``step``'s batch."""
        return [step * self.batch_size + r for r in self.rows]

    def item(self, position: int) -> np.ndarray:
        """The training image at stream ``position``."""
        index = position_index(position, len(self.files), self.seed)
        rng = np.random.default_rng([self.seed, position, 1])
        return load_square(self.files[index], self.size, self.crop, rng)

    def batch(self, step: int) -> np.ndarray:
        """The batch of ``step`` (this loader's rows; no prefetching)."""
        return np.stack([self.item(p) for p in self.positions(step)])

    def batches(self, start: int, stop: int) -> Iterator[np.ndarray]:
        """Yields the batches of steps ``start .. stop - 1`` in order, prefetching."""
        with concurrent.futures.ThreadPoolExecutor(self.workers) as pool:

            def submit(step: int) -> list[concurrent.futures.Future]:
                return [pool.submit(self.item, p) for p in self.positions(step)]

            pending = collections.deque(
                submit(s) for s in range(start, min(stop, start + 1 + self.prefetch))
            )
            for step in range(start, stop):
                futures = pending.popleft()
                ahead = step + 1 + self.prefetch
                if ahead < stop:
                    pending.append(submit(ahead))
                yield np.stack([f.result() for f in futures])
