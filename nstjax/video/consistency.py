"""The temporal-consistency error of a stylised clip: how much it flickers."""

import jax.numpy as jnp
import numpy as np

from nstjax.video.warp import warp


def temporal_error(stylised: np.ndarray, backward: np.ndarray, reliable: np.ndarray) -> float:
    """Mean squared difference of consecutive stylised frames after warping, over reliable pixels.

    ``sum_i sum_x c_i(x) |y_i(x) - warp(y_{i-1}, b_i)(x)|^2 / (3 sum_i sum_x c_i(x))`` in grey
    levels squared (0-255 units; lower is steadier), ``b_i`` the flow from frame ``i`` to frame
    ``i - 1`` and ``c_i`` its reliability (Ruder et al. 2016, section 5).

    Args:
        stylised: ``[N, H, W, 3]`` frames in [0, 1].
        backward: ``[N - 1, H, W, 2]``: ``backward[i - 1]`` is the flow from frame ``i`` to ``i - 1``.
        reliable: ``[N - 1, H, W]`` reliabilities in [0, 1] (e.g. thresholded, or the soft maps).
    """
    total, weight = 0.0, 0.0
    for i in range(1, len(stylised)):
        previous = np.asarray(warp(jnp.asarray(stylised[i - 1]), jnp.asarray(backward[i - 1])))
        diff = (np.asarray(stylised[i], np.float64) - previous) * 255.0
        c = np.asarray(reliable[i - 1], np.float64)
        total += float(np.sum(c[..., None] * diff * diff))
        weight += 3.0 * float(np.sum(c))
    return total / weight
