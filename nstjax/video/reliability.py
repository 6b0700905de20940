"""Where a flow can be trusted: Ruder et al.'s forward-backward consistency and motion boundaries.

A transcription of ``consistencyChecker/consistencyChecker.cpp`` of manuelruder/artistic-videos
(``checkConsistency``, lines 40-88, and the smoothing of ``main``, lines 103-110): for the flow
``w_hat`` from frame ``i`` to frame ``j`` and the flow ``w_tilde`` back from ``j`` to ``i`` sampled
at ``x + w_hat(x)``, a pixel is

- *disoccluded* (reliability 0) where ``|w_tilde + w_hat|^2 > 0.01 (|w_tilde|^2 + |w_hat|^2) + 0.5``,
- on a *motion boundary* (0) where ``|grad u_hat|^2 + |grad v_hat|^2 > 0.01 |w_hat|^2 + 0.002``,
- *out of frame* (0) where ``x + w_hat(x)`` leaves the image,

and 1 elsewhere; the map is then smoothed by a Gaussian of sigma 0.8 (disocclusions entering it
as -1, so the smoothing reaches outward from them) and clipped to [0, 1].
"""

import jax.numpy as jnp
import numpy as np
from scipy import ndimage

from nstjax.video.warp import inside, warp

SMOOTHING_SIGMA = 0.8
"""``SMOOTH_STRENGH`` of the reference checker (its Gaussian is cut at 2 sigma)."""
DISOCCLUSION = (0.01, 0.5)
"""``|w_tilde + w_hat|^2 > a (|w_tilde|^2 + |w_hat|^2) + b``: ``(a, b)``."""
MOTION_BOUNDARY = (0.01, 0.002)
"""``|grad u_hat|^2 + |grad v_hat|^2 > a |w_hat|^2 + b``: ``(a, b)``."""


def _gradient_energy(flow: np.ndarray) -> np.ndarray:
    """``|grad u|^2 + |grad v|^2`` by central differences (one-sided at the borders)."""
    dy = np.gradient(flow, axis=0)
    dx = np.gradient(flow, axis=1)
    return np.sum(dx * dx + dy * dy, axis=-1)


def reliability(flow: np.ndarray, back: np.ndarray, smooth: bool = True) -> np.ndarray:
    """``[H, W]`` reliability in [0, 1] of ``flow`` (frame ``i`` to frame ``j``).

    Args:
        flow: ``[H, W, 2]`` the flow ``w_hat`` from frame ``i`` to frame ``j`` (what warps frame
            ``j`` onto frame ``i``, :func:`nstjax.video.warp.warp`).
        back: ``[H, W, 2]`` the flow from frame ``j`` to frame ``i``.
        smooth: apply the reference's Gaussian smoothing.

    Returns:
        float32, 0 at disoccluded, motion-boundary and out-of-frame pixels of frame ``i``.
    """
    flow = np.asarray(flow, np.float64)
    back_at = np.asarray(warp(jnp.asarray(back, jnp.float32), jnp.asarray(flow, jnp.float32)))
    a, b = DISOCCLUSION
    round_trip = np.sum((back_at + flow) ** 2, axis=-1)
    disoccluded = round_trip > a * (np.sum(back_at**2, axis=-1) + np.sum(flow**2, axis=-1)) + b
    disoccluded |= ~np.asarray(inside(jnp.asarray(flow)))
    a, b = MOTION_BOUNDARY
    boundary = _gradient_energy(flow) > a * np.sum(flow**2, axis=-1) + b
    mask = np.where(disoccluded, -1.0, np.where(boundary, 0.0, 1.0))
    if smooth:
        mask = ndimage.gaussian_filter(mask, SMOOTHING_SIGMA, truncate=2.0, mode="nearest")
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def exclusive(reliabilities: np.ndarray) -> np.ndarray:
    """Long-term weights: each earlier frame counts only where no closer one is reliable.

    ``c_j = max(c_j - sum_{k < j} c_k, 0)`` over ``[J, H, W]`` reliabilities ordered closest
    first (Ruder et al. 2016, eq. 7). The reference's ``processFlowWeights`` with
    ``closestFirst`` (``artistic_video.lua``, lines 306-329) subtracts the closer frames'
    already exclusive weights instead, which leaves an earlier frame more weight where the closer
    ones overlap.
    """
    c = np.asarray(reliabilities, np.float32)
    closer = np.cumsum(c, axis=0) - c
    return np.maximum(c - closer, 0.0)
