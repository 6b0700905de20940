"""Optical flow between frames with OpenCV's DIS method, computed once per clip and cached."""

import hashlib
from pathlib import Path

import numpy as np

from nstjax import atomic
from nstjax.errors import NstjaxError

PRESET = "fast"
"""OpenCV's DIS preset (``ultrafast``, ``fast``, ``medium``); ``fast`` was the most accurate of
the three on the synthetic clip (docs/video.md)."""


def _cv2():
    try:
        import cv2
    except ImportError as e:
        raise NstjaxError(
            "optical flow needs OpenCV: pip install 'nstjax[video]' (opencv-python-headless)"
        ) from e
    return cv2


def _grey(cv2, frame: np.ndarray) -> np.ndarray:
    rgb = np.clip(np.asarray(frame) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def optical_flow(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``[H, W, 2]`` flow ``w`` with ``source(x) ~ target(x + w(x))`` (DIS, variational refinement).

    So ``warp(target, w)`` (:func:`nstjax.video.warp.warp`) brings ``target`` onto ``source``.

    Args:
        source, target: ``[H, W, 3]`` frames in [0, 1].
    """
    cv2 = _cv2()
    preset = getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{PRESET.upper()}")
    dis = cv2.DISOpticalFlow_create(preset)
    flow = dis.calc(_grey(cv2, source), _grey(cv2, target), None)
    return np.asarray(flow, np.float32)


def clip_key(frames: np.ndarray) -> str:
    """A digest of the frames (their 8-bit values and shape): the cache's key."""
    data = np.clip(np.asarray(frames) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    digest = hashlib.sha256(str(data.shape).encode())
    digest.update(data.tobytes())
    return digest.hexdigest()[:16]


class FlowCache:
    """Flows between pairs of frames of one clip, each computed once and kept as ``.npy``.

    Args:
        frames: ``[N, H, W, 3]`` the clip in [0, 1].
        folder: where the flows are kept (``None``: in memory only); a subfolder named by
            :func:`clip_key` so a changed clip never reads another's flows.
    """

    def __init__(self, frames: np.ndarray, folder: str | Path | None = None):
        self.frames = frames
        self.folder = None if folder is None else Path(folder) / clip_key(frames) / PRESET
        self._memory: dict[tuple[int, int], np.ndarray] = {}

    def flow(self, i: int, j: int) -> np.ndarray:
        """The flow from frame ``i`` to frame ``j`` (what warps frame ``j`` onto frame ``i``)."""
        if (i, j) in self._memory:
            return self._memory[i, j]
        path = None if self.folder is None else self.folder / f"flow_{i:05d}_{j:05d}.npy"
        if path is not None and path.exists():
            result = np.load(path)
        else:
            result = optical_flow(self.frames[i], self.frames[j])
            if path is not None:
                with atomic.atomic_path(path) as tmp:
                    np.save(tmp, result)
        self._memory[i, j] = result
        return result
