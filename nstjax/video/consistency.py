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


def frame_losses(
    params, frames: np.ndarray, styles, run, options, stylised: np.ndarray
) -> np.ndarray:
    """``[N, 2]`` each stylised frame's content and style loss (unweighted, the engine's terms)
    under ``run``'s objective with the frame as content: per-frame quality on one scale for
    every mode.

    Args:
        params: VGG parameters.
        frames: ``[N, H, W, 3]`` the clip in [0, 1].
        styles: the style images ``run.style`` indexes.
        run: the objective (its temporal fields are ignored).
        options: static options (the program's layers and pooling).
        stylised: ``[N, H, W, 3]`` the results in [0, 1].
    """
    import dataclasses

    from nstjax import engine, execute, vgg
    from nstjax.batch import build

    runs = [
        dataclasses.replace(run, content=i, temporal=None, init="content")
        for i in range(len(frames))
    ]
    options = execute.checked_options(options, {}, None)
    batch = execute.plan_runs(runs, [frames.shape[1:3]] * len(runs), options)[0]
    program = batch.group.program
    params = vgg.prepare(params, program.convolution)
    built = build.build(params, program, runs, list(frames), styles)
    pixels = jnp.asarray(np.asarray(stylised, np.float32) * 255.0)
    terms = engine.evaluate(params, pixels, built.hyper, built.targets, program=program)
    return np.asarray(terms)[:, 1:3]
