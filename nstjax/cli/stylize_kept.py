"""What ``nstjax stylize`` keeps when it is interrupted or cannot write an image.

Interrupted (Ctrl-C or SIGTERM): the finished runs are written as usual and each unfinished run's
current image (as of the last chunk: ``--save-every`` steps, else
:data:`nstjax.run.INTERACTIVE_CHUNK`) is saved as
``OUT.interrupted-stepNNNNN.png``, a name no finished result has. A write that fails (disk full,
permissions) is reported on one line and the image goes to a folder of the system's temporary
folder instead, so what was computed is not lost with it.
"""

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nstjax import image
from nstjax.errors import NstjaxError


def interrupted_path(path: Path, step: int) -> Path:
    """Where an unfinished run's image goes: ``x.png`` -> ``x.interrupted-step00040.png``."""
    return path.with_name(f"{path.stem}.interrupted-step{step:05d}{path.suffix}")


def rescue_folder() -> Path:
    """Where images that cannot be written to their place go instead."""
    return Path(tempfile.gettempdir()) / "nstjax-unwritten"


def save(path: Path, pixels: np.ndarray, what: str = "output image") -> bool:
    """Writes ``pixels`` to ``path``; if that fails, says so on one line and writes them into
    :func:`rescue_folder` instead. Returns whether ``path`` was written."""
    try:
        image.save_image(path, pixels, what)
        return True
    except NstjaxError as e:
        elsewhere = rescue_folder() / path.name
        try:
            image.save_image(elsewhere, pixels, what)
            where = f"kept as {elsewhere} instead"
        except NstjaxError:
            where = "it could not be written anywhere"
        print(f"nstjax: {e}; {where}", file=sys.stderr)
        return False


class Current:
    """An observer of the batches: each run's latest image and the finished results.

    Args:
        paths: each run's output file, by the run's key.
        total_steps: a run's steps in all (every scale of a schedule).
    """

    def __init__(self, paths: list[Path], total_steps: int):
        self.paths, self.total = paths, total_steps
        self.latest: dict = {}  # key -> (step, [H, W, 3] in [0, 1]) of an unfinished run
        self.finished: dict = {}  # key -> Result

    def batch_started(self, batch) -> None:
        pass

    def chunk_done(self, batch, steps, metrics, images) -> None:
        step = batch.first_step + steps
        for item, pixels in zip(batch.items, images()):
            self.latest[item.key] = (step, pixels)

    def batch_finished(self, batch, results) -> None:
        if batch.first_step + batch.steps < self.total:
            return  # a coarser scale of a schedule
        for result in results:
            self.finished[result.key] = result
            self.latest.pop(result.key, None)

    def keep(self, report: Callable[[list, list[Path]], int]) -> str:
        """Writes the finished runs with ``report(results, paths)`` and the unfinished runs'
        current images; returns one line saying what was kept."""
        keys = sorted(self.finished)
        unwritten = report([self.finished[k] for k in keys], [self.paths[k] for k in keys])
        saved = []
        for key, (step, pixels) in sorted(self.latest.items()):
            path = interrupted_path(self.paths[key], step)
            if save(path, pixels, "unfinished image"):
                saved.append(path)
        parts = [f"{len(keys) - unwritten} finished image(s) written"]
        if saved:
            shown = saved[0] if len(saved) == 1 else f"{saved[0]} and {len(saved) - 1} more"
            parts.append(f"the current image of {len(saved)} unfinished run(s) saved as {shown}")
        untouched = len(self.paths) - len(keys) - len(self.latest)
        if untouched:
            parts.append(f"{untouched} run(s) had not started")
        return "stylize: " + "; ".join(parts)
