"""A clip's work folder: each frame's result of each pass saved atomically, so a rerun skips
what is done; the folder's name carries a digest of everything the results depend on."""

import hashlib
import json
from pathlib import Path

import numpy as np

from nstjax import atomic


def digest(*parts) -> str:
    """A short digest of ``parts`` (strings, numbers, arrays)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str(part.shape).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True, default=repr).encode())
    return h.hexdigest()[:16]


class Workdir:
    """``root/<name>/pass_PP/frame_FFFFF.npy``: float32 frames in [0, 1].

    Args:
        root: the work folder (``None``: nothing is kept, every frame is computed).
        name: the subfolder of one mode and one set of inputs and settings (:func:`digest`).
    """

    def __init__(self, root: str | Path | None, name: str):
        self.folder = None if root is None else Path(root) / name

    def _path(self, pass_index: int, frame: int) -> Path:
        return self.folder / f"pass_{pass_index:02d}" / f"frame_{frame:05d}.npy"

    def load(self, pass_index: int, frame: int) -> np.ndarray | None:
        """The saved result of ``frame`` in ``pass_index``, or ``None``."""
        if self.folder is None:
            return None
        path = self._path(pass_index, frame)
        return np.load(path) if path.exists() else None

    def kept(self) -> str:
        """What an interrupted clip leaves for a rerun, as one line."""
        if self.folder is None:
            return "video: no work folder, so nothing was kept"
        count = len(list(self.folder.glob("pass_*/frame_*.npy")))
        if count == 0:
            return "video: no frame finished yet; a rerun starts from the first"
        return (
            f"video: {count} frame result(s) kept in {self.folder}; rerun the same command to "
            "go on from them"
        )

    def save(self, pass_index: int, frame: int, result: np.ndarray) -> None:
        """Saves a frame's result atomically (a reader never sees half a file)."""
        if self.folder is None:
            return
        with atomic.atomic_path(self._path(pass_index, frame)) as tmp:
            np.save(tmp, np.asarray(result, np.float32))
