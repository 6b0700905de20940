"""Stylising a clip: ``independent``, ``sequential`` (frame by frame, as Ruder et al.'s
``artistic_video.lua``) or ``multipass`` (passes over the whole clip, each pass one batch of runs).

Every frame is a :class:`~nstjax.run.Run` of the executor (:mod:`nstjax.execute`) with the frame
as its content; the temporal loss's targets (the stylised neighbours warped onto the frame and
their reliabilities) and the initial image travel in the run (``Run.temporal``,
``Run.temporal_reliability``, ``Run.init``), so all frames of a shape share one compiled program.
"""

import dataclasses
import math
from collections.abc import Callable, Sequence
from functools import partial

import jax.numpy as jnp
import numpy as np

from nstjax import execute
from nstjax.errors import NstjaxError
from nstjax.run import Options, Run
from nstjax.video import reliability
from nstjax.video.flow import FlowCache, clip_key
from nstjax.video.warp import warp
from nstjax.video.workdir import Workdir, digest

MODES = ("multipass", "sequential", "independent")
DEFAULT_MODE = "multipass"
TEMPORAL_WEIGHTS = {"sequential": 200.0, "multipass": 100.0, "independent": 0.0}
"""The temporal weight by mode: the reference's 1e3 (``artistic_video.lua``) and 5e2
(``artistic_video_multiPass.lua``) relative to its content weight 5, times nstjax's content weight
1 (both compare 0-255 pixels or VGG features by a mean of squares, as here)."""
DEFAULT_PASSES = 6
"""Passes of the multi-pass mode (the reference runs 15 of 100 L-BFGS iterations,
``artistic_video_multiPass.lua`` lines 40, 47). Each pass restarts L-BFGS and blends the frames,
so more passes of a fixed budget steady the clip more and stylise each frame less: on 4 frames
at 64 px, 200 L-BFGS steps, 4, 6 and 8 passes cut the flicker 3.3x, 4.6x and 6.2x at global
effects 0.008, 0.011 and 0.018 below independent frames' (docs/video.md); 6 keeps both margins."""
DEFAULT_BLEND = 1.0
"""``blendWeight`` of the reference: the warped neighbour of the pass's direction is blended into
a frame's start with this weight times its reliability (the other neighbour with 0)."""

DEFAULT_LATER_STEPS = 0.5
"""The step fraction of the sequential mode's frames after the first (:class:`VideoSettings`)."""
DEFAULT_OPTIMIZER = "lbfgs"
"""The frames' optimiser unless one is chosen: the reference's (``artistic_video.lua`` line 46,
``-optimizer lbfgs``). The temporal modes start a frame from a neighbour's result, so a frame
that is not converged carries its progress into the next: with Adam at 96 steps per frame the
sequential mode's content fidelity fell frame after frame (0.577 to 0.499 over 5 frames, the
same with the temporal weight 0), while with L-BFGS the frames are near their optimum and the
start no longer decides their quality (docs/video.md, "Measured")."""


@dataclasses.dataclass(frozen=True)
class VideoSettings:
    """How a clip is stylised (what a single image's :class:`Run` cannot say).

    Attributes:
        mode: one of :data:`MODES`.
        temporal_weight: the temporal loss's weight (``None``: :data:`TEMPORAL_WEIGHTS`).
        passes: passes of ``multipass``; ``Options.steps`` is divided over them.
        temporal_from: the first pass (0-based) with the temporal loss (``None``: half of
            ``passes``, as the reference's ``use_temporalLoss_after`` 8 of 15).
        blend: see :data:`DEFAULT_BLEND`.
        long_term: ``sequential``: the earlier frames (offsets, closest first) whose warped
            results are targets, with exclusive reliabilities; ``(1,)`` is the short-term loss.
        later_steps: ``sequential``: the frames after the first take this fraction of
            ``Options.steps`` (they start from the warped previous result): the reference's
            1000 of 2000 iterations (``artistic_video.lua`` lines 40, 151).
    """

    mode: str = DEFAULT_MODE
    temporal_weight: float | None = None
    passes: int = DEFAULT_PASSES
    temporal_from: int | None = None
    blend: float = DEFAULT_BLEND
    long_term: tuple[int, ...] = (1,)
    later_steps: float = DEFAULT_LATER_STEPS

    def weight(self) -> float:
        w = TEMPORAL_WEIGHTS[self.mode] if self.temporal_weight is None else self.temporal_weight
        return 0.0 if self.mode == "independent" else float(w)

    def first_temporal_pass(self) -> int:
        return self.passes // 2 if self.temporal_from is None else self.temporal_from


def check_settings(settings: VideoSettings, frames: int) -> None:
    """Raises :class:`NstjaxError` naming the option that is wrong."""
    if settings.mode not in MODES:
        raise NstjaxError(f"--mode must be one of {', '.join(MODES)}, got {settings.mode!r}")
    if settings.passes < 1:
        raise NstjaxError(f"--passes must be >= 1, got {settings.passes}")
    if not settings.weight() >= 0 or not math.isfinite(settings.weight()):
        raise NstjaxError(f"--temporal-weight must be >= 0, got {settings.temporal_weight}")
    if not 0 < settings.later_steps <= 1:
        raise NstjaxError(f"--later-steps must be in (0, 1], got {settings.later_steps}")
    if not (settings.blend >= 0 and math.isfinite(settings.blend)):
        raise NstjaxError(f"--blend must be a finite number >= 0, got {settings.blend}")
    if not settings.long_term or any(k < 1 or k >= frames for k in settings.long_term):
        raise NstjaxError(
            f"--long-term offsets must be in 1..{frames - 1}, got {settings.long_term}"
        )


class Neighbours:
    """Stylised frames warped onto other frames, with their reliabilities (flows cached)."""

    def __init__(self, flows: FlowCache):
        self.flows = flows
        self._reliability: dict[tuple[int, int], np.ndarray] = {}

    def reliability(self, i: int, j: int) -> np.ndarray:
        """``[H, W]`` where frame ``j`` warped onto frame ``i`` can be trusted."""
        if (i, j) not in self._reliability:
            self._reliability[i, j] = reliability.reliability(
                self.flows.flow(i, j), self.flows.flow(j, i)
            )
        return self._reliability[i, j]

    def warped(self, i: int, j: int, stylised: np.ndarray) -> np.ndarray:
        """``stylised`` (frame ``j``'s result, [0, 1]) warped onto frame ``i``."""
        return np.asarray(warp(jnp.asarray(stylised), jnp.asarray(self.flows.flow(i, j))))


class _SaveEach(execute.Observer):
    """Saves each frame's result as its batch finishes (``save(frame, image)``), so that an
    interruption loses at most the batch in flight, not the pass's earlier batches."""

    def __init__(self, save: Callable[[int, np.ndarray], None]):
        self.save = save

    def batch_finished(self, batch, results):
        for r in results:
            if r.failed_at is None:
                self.save(r.run.content, r.image)


def _execute(
    params, runs: Sequence[Run], frames: np.ndarray, styles, options: Options, save: Callable
) -> list:
    """The images of ``runs`` (``Run.content`` indexes ``frames``), as few batches as fit;
    ``save(frame, image)`` is called for each finished frame as its batch ends."""
    shapes = [frames.shape[1:3]] * len(runs)
    batches = execute.plan_runs(runs, shapes, options)
    results = execute.run_plan(params, batches, list(frames), styles, observer=_SaveEach(save))
    for r in results:
        if r.failed_at is not None:
            raise NstjaxError(
                f"frame {r.run.content}: the optimisation hit a non-finite value at step {r.failed_at}"
            )
    return [r.image for r in sorted(results, key=lambda r: r.key)]


def _no_temporal(run: Run, depth: int, shape) -> Run:
    """``run`` with zero-reliability temporal targets: the program of the frames that have some."""
    zeros = np.zeros((depth, *shape), np.float32)
    return dataclasses.replace(
        run,
        temporal=np.zeros((depth, *shape, 3), np.float32),
        temporal_reliability=zeros,
        temporal_weight=0.0,
    )


def _sequential_run(
    run: Run, i: int, done: dict, near: Neighbours, settings: VideoSettings, shape
) -> Run:
    """Frame ``i`` of the sequential mode: targets from the earlier results ``done``, its start
    the previous result warped onto it (``prevWarped``, ``artistic_video.lua`` lines 237-243)."""
    base = _no_temporal(dataclasses.replace(run, content=i), len(settings.long_term), shape)
    earlier = [i - k for k in settings.long_term if i - k >= 0]
    if not earlier:
        return base
    warped = base.temporal.copy()
    raw = base.temporal_reliability.copy()
    for n, j in enumerate(earlier):
        warped[n] = near.warped(i, j, done[j])
        raw[n] = near.reliability(i, j)
    return dataclasses.replace(
        base,
        init=near.warped(i, i - 1, done[i - 1]),
        temporal=warped,
        temporal_reliability=reliability.exclusive(raw),
        temporal_weight=settings.weight(),
    )


def _sequential(params, frames, styles, run, options, settings, near, work, report) -> np.ndarray:
    """Frame after frame, each with the temporal loss to the earlier results."""
    done = {}
    later = dataclasses.replace(options, steps=max(1, round(options.steps * settings.later_steps)))
    for i in range(len(frames)):
        done[i] = work.load(0, i)
        if done[i] is None:
            frame_run = _sequential_run(run, i, done, near, settings, frames.shape[1:3])
            steps = options if i == 0 else later
            save = partial(work.save, 0)
            done[i] = _execute(params, [frame_run], frames, styles, steps, save)[0]
        report(f"frame {i + 1}/{len(frames)}")
    return np.stack([done[i] for i in range(len(frames))])


def _pass_run(
    run: Run, i: int, last: np.ndarray, p: int, near: Neighbours, settings: VideoSettings
) -> Run:
    """Frame ``i`` in pass ``p >= 1``: its start the blend of its last result with the warped
    neighbours (``artistic_video_multiPass.lua`` lines 222-248), its temporal target the
    neighbour of the pass's direction (lines 164-172) from pass ``p >= temporal_from``."""
    n, shape = len(last), last.shape[1:3]
    forward = p % 2 == 0  # the reference's pass ``run = p + 1`` is forward when odd
    base = _no_temporal(dataclasses.replace(run, content=i), 1, shape)
    start, divisor = last[i].astype(np.float64), np.ones((*shape, 1))
    for j, weight in (
        (i - 1, settings.blend if forward else 0.0),
        (i + 1, 0.0 if forward else settings.blend),
    ):
        if 0 <= j < n and weight > 0:
            c = weight * near.reliability(i, j)[..., None]
            start += c * near.warped(i, j, last[j])
            divisor += c
    base = dataclasses.replace(base, init=(start / divisor).astype(np.float32))
    j = i - 1 if forward else i + 1
    if p < settings.first_temporal_pass() or not 0 <= j < n:
        return base
    return dataclasses.replace(
        base,
        temporal=near.warped(i, j, last[j])[None],
        temporal_reliability=near.reliability(i, j)[None],
        temporal_weight=settings.weight(),
    )


def _multipass(params, frames, styles, run, options, settings, near, work, report) -> np.ndarray:
    """Passes over the whole clip; within a pass every frame depends only on the last pass, so
    the frames of a pass are one batch of runs."""
    steps = dataclasses.replace(options, steps=max(1, math.ceil(options.steps / settings.passes)))
    last = None
    for p in range(settings.passes):
        current = [work.load(p, i) for i in range(len(frames))]
        todo = [i for i, x in enumerate(current) if x is None]
        if p == 0:
            runs = [
                _no_temporal(dataclasses.replace(run, content=i), 1, frames.shape[1:3])
                for i in todo
            ]
        else:
            runs = [_pass_run(run, i, last, p, near, settings) for i in todo]
        if runs:
            save = partial(work.save, p)
            for i, result in zip(todo, _execute(params, runs, frames, styles, steps, save)):
                current[i] = result
        last = np.stack(current)
        report(f"pass {p + 1}/{settings.passes}")
    return last


def _independent(params, frames, styles, run, options, settings, near, work, report) -> np.ndarray:
    """Every frame on its own, as one batch (the baseline that flickers)."""
    current = [work.load(0, i) for i in range(len(frames))]
    todo = [i for i, x in enumerate(current) if x is None]
    runs = [dataclasses.replace(run, content=i) for i in todo]
    if runs:
        save = partial(work.save, 0)
        for i, result in zip(todo, _execute(params, runs, frames, styles, options, save)):
            current[i] = result
    report("all frames")
    return np.stack(current)


_MODES: dict[str, Callable] = {
    "multipass": _multipass,
    "sequential": _sequential,
    "independent": _independent,
}


def stylize_clip(
    params,
    frames: np.ndarray,
    styles: Sequence[np.ndarray],
    run: Run,
    options: Options,
    settings: VideoSettings,
    workdir=None,
    report: Callable[[str], None] = lambda line: None,
) -> np.ndarray:
    """Stylises a clip.

    Args:
        params: VGG parameters.
        frames: ``[N, H, W, 3]`` the clip in [0, 1] at the output size.
        styles: the style images ``run.style`` indexes, in [0, 1].
        run: the settings of every frame (its ``content``, ``init`` and temporal fields are
            set per frame; its ``init`` is the first frame's, and every frame's in the first pass).
        options: static options; ``options.steps`` is each frame's budget (divided over the
            passes of ``multipass``).
        settings: the mode and its settings.
        workdir: a folder where flows and per-frame results are kept (a rerun with the same
            inputs and settings skips what is done); ``None``: nothing kept.
        report: called with a short line after each frame or pass.

    Returns:
        ``[N, H, W, 3]`` the stylised frames in [0, 1].
    """
    check_settings(settings, len(frames))
    options = execute.checked_options(options, {}, None)
    flows = FlowCache(frames, None if workdir is None else f"{workdir}/flow")
    key = digest(
        clip_key(frames), *[np.asarray(s) for s in styles], _describe(run), options, settings
    )
    work = Workdir(workdir, f"{settings.mode}-{key}")
    try:
        return _MODES[settings.mode](
            params, frames, styles, run, options, settings, Neighbours(flows), work, report
        )
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: say what a rerun goes on from
        e.add_note(work.kept())
        raise


def _describe(run: Run) -> dict:
    """``run``'s fields, arrays by digest (the work folder's key)."""
    fields = vars(run)
    return {k: digest(v) if isinstance(v, np.ndarray) else repr(v) for k, v in fields.items()}
