"""The three modes on a clip with known motion: flicker, per-frame losses and wall time."""

import dataclasses
import time

import numpy as np

from nstjax import quality
from nstjax.run import Options, Run
from nstjax.video import consistency, modes
from nstjax.video.reliability import reliability
from nstjax.video.synthetic import SyntheticClip

QUALITY = ("content_fidelity", "global_effects")
"""The per-frame quality measures reported (Wang et al.'s CF and GE, :mod:`nstjax.quality`)."""


@dataclasses.dataclass(frozen=True)
class ModeFigures:
    """One mode's figures on a clip.

    Attributes:
        mode: the mode.
        temporal_error: :func:`nstjax.video.consistency.temporal_error` under the true flow
            (grey levels squared; lower is steadier).
        content: mean over frames of the content loss (:func:`consistency.frame_losses`).
        style: mean over frames of the style loss.
        seconds: wall time of the mode (flow and compilation included).
        frames: ``[N, H, W, 3]`` the stylised clip.
        quality: mean over frames of each of :data:`QUALITY` (:func:`nstjax.quality.measure`,
            each frame against its own content frame and the first style).
    """

    mode: str
    temporal_error: float
    content: float
    style: float
    seconds: float
    frames: np.ndarray
    quality: dict[str, float]


def true_consistency_inputs(clip: SyntheticClip) -> tuple[np.ndarray, np.ndarray]:
    """The exact backward flows ``[N - 1, H, W, 2]`` and their (unsmoothed) reliabilities."""
    n = len(clip.frames)
    backward = np.stack([clip.flow(i, i - 1) for i in range(1, n)])
    reliable = np.stack(
        [reliability(clip.flow(i, i - 1), clip.flow(i - 1, i), smooth=False) for i in range(1, n)]
    )
    return backward, reliable


def compare_modes(
    params,
    clip: SyntheticClip,
    styles,
    run: Run,
    options: Options,
    settings: dict[str, modes.VideoSettings],
    workdir=None,
) -> list[ModeFigures]:
    """Stylises ``clip`` with every mode of ``settings`` (mode -> its settings) and measures it."""
    backward, reliable = true_consistency_inputs(clip)
    figures = []
    for mode, setting in settings.items():
        started = time.perf_counter()
        frames = modes.stylize_clip(params, clip.frames, styles, run, options, setting, workdir)
        seconds = time.perf_counter() - started
        losses = consistency.frame_losses(params, clip.frames, styles, run, options, frames)
        error = consistency.temporal_error(frames, backward, reliable)
        content, style = (float(x) for x in losses.mean(axis=0))
        measured = quality.measure(
            params, frames, clip.frames, [styles[0]] * len(frames), names=QUALITY
        )
        means = {name: float(np.mean(v)) for name, v in measured.items()}
        figures.append(ModeFigures(mode, error, content, style, seconds, frames, means))
    return figures
