"""A clip with known motion made from a still: a crop window sliding and zooming over a photo.

Frame ``t`` shows the still's point ``s_t x + o_t`` at its pixel ``x`` (window scale ``s_t``,
offset ``o_t``), so the true flow between any two frames is known exactly, with no occlusion
other than what leaves the frame: it tests the flow, the warp and the masks.
"""

import dataclasses

import numpy as np
from scipy import ndimage


@dataclasses.dataclass(frozen=True)
class SyntheticClip:
    """A synthetic clip and its exact motion.

    Attributes:
        frames: ``[N, H, W, 3]`` float32 in [0, 1].
        scales: ``[N]`` the window's scale ``s_t`` (still pixels per frame pixel).
        offsets: ``[N, 2]`` the window's offset ``o_t = (x, y)`` in still pixels.
    """

    frames: np.ndarray
    scales: np.ndarray
    offsets: np.ndarray

    def flow(self, i: int, j: int) -> np.ndarray:
        """``[H, W, 2]`` the true flow from frame ``i`` to frame ``j``:
        ``(s_i x + o_i - o_j) / s_j - x``."""
        h, w = self.frames.shape[1:3]
        ys, xs = np.meshgrid(
            np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij"
        )
        grid = np.stack([xs, ys], axis=-1)
        into_j = (self.scales[i] * grid + self.offsets[i] - self.offsets[j]) / self.scales[j]
        return (into_j - grid).astype(np.float32)


def synthetic_clip(
    still: np.ndarray,
    frames: int,
    shape: tuple[int, int],
    shift: tuple[float, float] = (1.5, 0.75),
    zoom: float = 0.01,
) -> SyntheticClip:
    """Slides a window by ``shift`` (frame pixels per frame) and zooms in by ``zoom`` per frame.

    The window starts at scale 1 centred in ``still`` and must stay inside it.

    Args:
        still: ``[h, w, 3]`` in [0, 1], larger than ``shape`` by the motion.
        frames: number of frames.
        shape: ``(H, W)`` of the frames.
        shift: ``(dx, dy)`` per frame.
        zoom: relative shrink of the window per frame (the scene grows by about that).
    """
    h, w = shape
    t = np.arange(frames, dtype=np.float64)
    scales = 1.0 / (1.0 + zoom * t)
    centre = (np.array([still.shape[1], still.shape[0]], np.float64) - [w, h]) / 2
    offsets = centre + t[:, None] * np.asarray(shift, np.float64)
    # Zooming about the window's centre: keep its centre moving only by the shift.
    offsets += (1.0 - scales[:, None]) * np.array([w, h], np.float64) / 2
    ys, xs = np.meshgrid(
        np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij"
    )
    out = []
    for s, (ox, oy) in zip(scales, offsets):
        sx, sy = s * xs + ox, s * ys + oy
        if (
            sx.min() < 0
            or sy.min() < 0
            or sx.max() > still.shape[1] - 1
            or sy.max() > still.shape[0] - 1
        ):
            raise ValueError("the window leaves the still: use fewer frames or a larger still")
        channels = [ndimage.map_coordinates(still[..., c], [sy, sx], order=1) for c in range(3)]
        out.append(np.stack(channels, axis=-1))
    return SyntheticClip(np.clip(np.stack(out), 0, 1).astype(np.float32), scales, offsets)
