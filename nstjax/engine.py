"""The compiled core: a batch of runs (generated images) optimised together.

Arrays in, arrays out. A *run* is one generated image with its own targets and hyperparameters;
every per-run quantity carries a leading run axis ``R`` and is traced, so a batch that varies
weights, layer weights, learning rates, seeds or initial images compiles once. Only the
:class:`Program` (which layers are computed, pooling, optimiser, dtype, remat) and the shapes are
static.

The loss of one run is written for one image and ``jax.vmap`` batches it, optimiser included, so
runs never interact: changing one run's hyperparameters leaves the others bit-identical.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nstjax import losses, optim, style_mix, vgg
from nstjax.architecture import LAYER_NAMES
from nstjax.outcome import Outcome, Start  # noqa: F401  (optimize's result and resume point)

NUM_LAYERS = len(LAYER_NAMES)
METRICS = ("loss", "content", "style", "tv")
"""Columns of the per-step history: the total and its three unweighted-by-alpha/beta terms."""
STEP_COLUMNS = (*METRICS, "evaluations")
"""Columns of what a step returns per run: :data:`METRICS` before the step, then the loss/gradient
evaluations the step made for that run (0 once the run has stopped)."""


@dataclasses.dataclass(frozen=True)
class Program:
    """What is static about a batch: changing any field recompiles.

    Attributes:
        content_layers: layers whose content loss is computed (per-run layer weights select and
            weight them; a weight of 0 switches one off without recompiling).
        style_layers: layers whose style loss is computed, likewise.
        pooling: ``"max"`` or ``"avg"``.
        optimizer: one of :data:`nstjax.optim.OPTIMIZERS` (``"adam"``, ``"lbfgs"``, ``"lbfgs_wolfe"``).
        lbfgs_history: curvature pairs kept by L-BFGS.
        dtype: ``"float32"`` or ``"bfloat16"`` (activations; Grams and losses accumulate in fp32).
        remat: rematerialise VGG blocks in the backward pass (memory for compute).
        guided: style targets are per-region (guided Grams with masks).
        convolution: which kernels run VGG's convolutions and the Gram products
            (:data:`nstjax.kernels.CONVOLUTIONS`), chosen once per call or sweep
            (:func:`nstjax.kernels.choose`); the parameters must be prepared for it
            (:func:`nstjax.vgg.prepare`).
        style_losses: the style losses computed (:data:`nstjax.style_losses.STYLE_LOSSES`, in
            that order); each run weights them (``Hyper.style_loss_weights``), so a weight of 0
            switches one off without recompiling. ``"gram"`` alone is today's program.
        style_loss_layers: for each of ``style_losses``, the layers it is computed at (``()``:
            all of ``style_layers``).
    """

    content_layers: tuple[str, ...] = ("conv4_2",)
    style_layers: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    pooling: str = "max"
    optimizer: str = "adam"
    lbfgs_history: int = 20
    dtype: str = "float32"
    remat: bool = False
    guided: bool = False
    convolution: str = "xla"
    style_losses: tuple[str, ...] = ("gram",)
    style_loss_layers: tuple[tuple[str, ...], ...] = ()

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(n for n in LAYER_NAMES if n in self.content_layers or n in self.style_layers)

    def layers_of(self, style_loss: str) -> tuple[str, ...]:
        """The layers ``style_loss`` is computed at."""
        i = self.style_losses.index(style_loss)
        own = self.style_loss_layers[i] if i < len(self.style_loss_layers) else ()
        return own or self.style_layers

    @property
    def style(self) -> style_mix.StyleProgram:
        """The static part of the style losses (:func:`nstjax.style_mix.style_loss`)."""
        layers = tuple(self.layers_of(n) for n in self.style_losses)
        return style_mix.StyleProgram(self.style_losses, layers, self.convolution)

    def make_optimizer(self) -> optim.Optimizer | optim.LineSearchOptimizer:
        return optim.make(self.optimizer, self.lbfgs_history)


class Hyper(NamedTuple):
    """Per-run hyperparameters, each with a leading run axis."""

    content_weight: jax.Array  # [R]
    style_weight: jax.Array  # [R]
    tv_weight: jax.Array  # [R]
    content_layer_weights: jax.Array  # [R, 16]
    style_layer_weights: jax.Array  # [R, 16]
    learning_rate: jax.Array  # [R]
    normalize_gradients: jax.Array | None = None  # [R] bool, neural-style's -normalize_gradients
    # Convergence stops (see State): None or 0 switches a test off.
    loss_tolerance: jax.Array | None = None  # [R] on |f_k - f_{k-1}| / |f_{k-1}|
    grad_tolerance: jax.Array | None = None  # [R] on max_i |g_k,i| (0-255 pixel units)
    style_loss_weights: jax.Array | None = None  # [R, len(Program.style_losses)]; None: all 1
    style_key: jax.Array | None = None  # [R, 2] uint32 key data; the step's key folds in the step
    temporal_weight: jax.Array | None = None  # [R] weight of Targets.temporal's loss (video)

    @property
    def style_weights(self) -> style_mix.StyleWeights:
        """The style loss's weights (:func:`nstjax.style_mix.style_loss`)."""
        return style_mix.StyleWeights(
            self.style_weight,
            self.style_layer_weights,
            self.style_loss_weights,
            self.style_key,
            self.normalize_gradients,
        )


class Targets(NamedTuple):
    """Per-run targets (leading run axis).

    ``content`` holds the content features by layer name; ``style`` each of the program's style
    losses' targets: loss name -> layer name -> representation (:mod:`nstjax.style_losses`; for
    ``"gram"`` the ``[R, C, C]`` Gram matrices). With ``Program.guided``, every style target has
    a region axis (``[R, K, ...]``, one per region) and ``masks`` holds ``[R, K, h, w]`` region
    masks at each style layer's resolution. ``temporal`` holds ``[R, J, H, W, 3]`` warped
    neighbouring frames (0-255 units) and ``temporal_mask`` their ``[R, J, H, W]`` reliability,
    the targets of the temporal loss (:func:`nstjax.losses.temporal_loss`; video).
    """

    content: dict[str, jax.Array]
    style: dict[str, dict[str, Any]]
    masks: dict[str, jax.Array] | None = None
    temporal: jax.Array | None = None
    temporal_mask: jax.Array | None = None


class State(NamedTuple):
    """The optimisation state of a batch (leading run axis everywhere but ``step``).

    A run is *active* until it stops, for one of two reasons, both recorded with the step ``k``
    at which they happened (the run then took ``k`` steps and keeps its pixels from step ``k``):

    - it *failed*: the loss or gradient at its pixels, or the result of step ``k`` (the new
      pixels, the new optimiser state, and for a line search the loss and gradient at the new
      pixels) is not finite. The step is rejected, so the pixels stay the last finite ones;
    - it *converged*, before step ``k``: the relative loss change
      ``|f_k - f_{k-1}| / |f_{k-1}|`` (``f_k`` the loss at its pixels before step ``k``,
      ``k >= 1``) is at most ``Hyper.loss_tolerance``, or the gradient's max-norm at its pixels
      is at most ``Hyper.grad_tolerance`` (torch's ``tolerance_grad`` test).

    A stopped run is still computed with the batch (lockstep) but never changes again.
    """

    pixels: jax.Array  # [R, H, W, 3] in 0-255 units
    opt_state: Any
    active: jax.Array  # [R] bool: False once a run failed or converged
    failed_at: jax.Array  # [R] int32: the step at which it failed, -1 if never
    step: jax.Array  # [] int32
    converged_at: jax.Array  # [R] int32: the step at which it converged, -1 if never
    evaluations: jax.Array  # [R] int32: loss/gradient evaluations made for the run so far
    last_loss: jax.Array  # [R] the loss before the previous step (for the relative change)
    # A line-search optimiser's evaluation at ``pixels`` (made by the step before); else None.
    evaluation: optim.Evaluation | None = None


def run_loss(params, program: Program, pixels, hyper: Hyper, targets: Targets, step=0):
    """Total loss of ONE run and its terms ``(content, style, tv)``.

    Args:
        params: VGG parameters (:func:`nstjax.vgg.load_params`).
        program: the static configuration.
        pixels: ``[H, W, 3]`` generated image in 0-255 units.
        hyper: this run's hyperparameters (no run axis).
        targets: this run's targets (no run axis).
        step: the step, folded into the run's key for the losses that draw random numbers.
    """
    dtype = jnp.dtype(program.dtype)
    feats = vgg.features(
        params,
        pixels / 255.0,
        program.layers,
        program.pooling,
        dtype=dtype,
        remat=program.remat,
        convolution=program.convolution,
    )
    norm = hyper.normalize_gradients
    content = losses.weighted_content_loss(
        feats, targets.content, hyper.content_layer_weights, norm, hyper.content_weight
    )
    masks = targets.masks if program.guided else None
    style = style_mix.style_loss(
        program.style, feats, targets.style, hyper.style_weights, masks, step
    )
    tv = losses.tv_loss(pixels)
    total = hyper.content_weight * content + hyper.style_weight * style + hyper.tv_weight * tv
    if targets.temporal is not None:  # video: counted in the total only
        temporal = losses.temporal_loss(pixels, targets.temporal, targets.temporal_mask)
        total = total + hyper.temporal_weight * temporal
    return total, jnp.stack([total, content, style, tv])


def init_state(program: Program, pixels: jax.Array) -> State:
    """Fresh optimiser state for ``pixels`` ``[R, H, W, 3]`` (0-255 units)."""
    optimizer = program.make_optimizer()
    opt_state = jax.vmap(optimizer.init)(pixels)
    runs = pixels.shape[0]
    evaluation = None
    if isinstance(optimizer, optim.LineSearchOptimizer):  # filled at step 0 (see _one_step)
        zeros = jnp.zeros((runs,), jnp.float32)
        aux = jnp.zeros((runs, len(METRICS)), jnp.float32)
        evaluation = optim.Evaluation(value=zeros, aux=aux, grad=jnp.zeros_like(pixels))
    return State(
        pixels=pixels,
        opt_state=opt_state,
        active=jnp.ones((runs,), bool),
        failed_at=jnp.full((runs,), -1, jnp.int32),
        step=jnp.int32(0),
        converged_at=jnp.full((runs,), -1, jnp.int32),
        evaluations=jnp.zeros((runs,), jnp.int32),
        last_loss=jnp.zeros((runs,), jnp.float32),
        evaluation=evaluation,
    )


def _all_finite(tree) -> jax.Array:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _converged(hyper: Hyper, here: optim.Evaluation, last_loss, step) -> jax.Array:
    """The convergence tests of :class:`State` for one run (False where a tolerance is off)."""
    converged = jnp.bool_(False)
    if hyper.loss_tolerance is not None:
        change = jnp.abs(here.value - last_loss)
        small = change <= hyper.loss_tolerance * jnp.abs(last_loss)
        converged |= (hyper.loss_tolerance > 0) & (step > 0) & small
    if hyper.grad_tolerance is not None:
        small = jnp.max(jnp.abs(here.grad)) <= hyper.grad_tolerance
        converged |= (hyper.grad_tolerance > 0) & small
    return converged


def _one_step(params, program: Program, hyper: Hyper, targets: Targets, run: State):
    """One step of ONE run (``run`` without the run axis; ``run.step`` is the batch's)."""
    optimizer = program.make_optimizer()

    def value_and_grad(pixels):
        (value, metrics), grad = jax.value_and_grad(run_loss, argnums=2, has_aux=True)(
            params, program, pixels, hyper, targets, run.step
        )
        return optim.Evaluation(value, metrics, grad)

    line_search = isinstance(optimizer, optim.LineSearchOptimizer)
    if line_search:
        # The evaluation at the pixels was made by the previous step's search, except at step 0
        # (the predicate is the batch's step, not per run, so this stays a real conditional).
        first = run.step == 0
        here = jax.lax.cond(first, value_and_grad, lambda _: run.evaluation, run.pixels)
    else:
        here = value_and_grad(run.pixels)
    finite_here = jnp.isfinite(here.value) & jnp.all(jnp.isfinite(here.grad))
    converged = run.active & finite_here & _converged(hyper, here, run.last_loss, run.step)
    moving = run.active & finite_here & ~converged
    if line_search:
        pixels, opt_state, evaluation, evaluations = optimizer.update(
            value_and_grad, here, run.opt_state, run.pixels, hyper.learning_rate, moving
        )
        evaluations = evaluations + first.astype(jnp.int32)
        finite_result = _all_finite((pixels, opt_state, evaluation.value, evaluation.grad))
    else:
        pixels, opt_state = optimizer.update(
            here.grad, run.opt_state, run.pixels, hyper.learning_rate
        )
        evaluation, evaluations = None, jnp.int32(1)
        finite_result = _all_finite((pixels, opt_state))
    go = moving & finite_result
    failed = run.active & ~converged & ~go
    evaluations = jnp.where(run.active, evaluations, 0)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(go, a, b), new, old)
    new = State(
        pixels=keep(pixels, run.pixels),
        opt_state=keep(opt_state, run.opt_state),
        active=go,
        failed_at=jnp.where(failed, run.step, run.failed_at),
        step=run.step,
        converged_at=jnp.where(converged, run.step, run.converged_at),
        evaluations=run.evaluations + evaluations,
        last_loss=jnp.where(run.active, here.value, run.last_loss),
        evaluation=keep(evaluation, here) if line_search else None,
    )
    row = jnp.concatenate([here.aux, evaluations.astype(here.aux.dtype)[None]])
    return new, row


_RUN_AXES = State(
    pixels=0,
    opt_state=0,
    active=0,
    failed_at=0,
    step=None,
    converged_at=0,
    evaluations=0,
    last_loss=0,
    evaluation=0,
)


def batched_step(params, program: Program, state: State, hyper: Hyper, targets: Targets):
    """One optimisation step of every run in the batch.

    Returns:
        The new state and ``[R, 5]`` rows in :data:`STEP_COLUMNS` order: the loss terms BEFORE
        the step (:data:`METRICS`), then the evaluations the step made for each run.
    """
    axes = _RUN_AXES._replace(evaluation=None if state.evaluation is None else 0)
    step_fn = jax.vmap(
        functools.partial(_one_step, params, program), in_axes=(0, 0, axes), out_axes=(axes, 0)
    )
    new, rows = step_fn(hyper, targets, state)
    return new._replace(step=state.step + 1), rows


@functools.partial(jax.jit, static_argnames=("program",), donate_argnames=("state",))
def train_step(params, state: State, hyper: Hyper, targets: Targets, *, program: Program):
    """One step, compiled: the form used from a Python loop (fastest on XLA:CPU). Returns what
    :func:`batched_step` returns."""
    return batched_step(params, program, state, hyper, targets)


@functools.partial(jax.jit, static_argnames=("program", "length"), donate_argnames=("state",))
def train_chunk(
    params, state: State, hyper: Hyper, targets: Targets, n_valid, *, program: Program, length: int
):
    """``length`` steps inside one compiled call (``lax.scan``), the first ``n_valid`` of them real.

    The rest are skipped by a ``lax.cond`` outside the vmap (no wasted compute), so one compiled
    program serves every chunk, the last short one included. Returns the state and
    ``[length, R, 5]`` rows as :func:`batched_step`'s (rows past ``n_valid`` are zeros).
    """

    def body(state, i):
        def real(state):
            return batched_step(params, program, state, hyper, targets)

        def skip(state):
            return state, jnp.zeros((state.pixels.shape[0], len(STEP_COLUMNS)), jnp.float32)

        return jax.lax.cond(i < n_valid, real, skip, state)

    return jax.lax.scan(body, state, jnp.arange(length))


@functools.partial(jax.jit, static_argnames=("program",))
def evaluate(params, pixels, hyper: Hyper, targets: Targets, *, program: Program):
    """``[R, 4]`` loss terms of a batch of images (no step)."""
    fn = jax.vmap(lambda p, h, t: run_loss(params, program, p, h, t)[1])
    return fn(pixels, hyper, targets)


def default_loop() -> str:
    """``"python"`` on CPU (measured faster there, docs/benchmarks.md), ``"scan"`` elsewhere."""
    return "python" if jax.default_backend() == "cpu" else "scan"


class Loop(NamedTuple):
    """How a batch advances: one compiled step from Python, or ``length`` steps per compiled call.

    ``step(params, state, hyper, targets) -> (state, rows)`` and, for the scan form,
    ``chunk(params, state, hyper, targets, n_valid) -> (state, rows)``; the jitted functions of
    this module (:func:`loop_for`) or their ahead-of-time compiled executables (the benchmark).
    """

    step: Callable
    chunk: Callable | None = None
    length: int = 1


def loop_for(program: Program, loop: str | None = None, chunk: int = 50) -> Loop:
    """The loop :func:`optimize` runs: ``"python"`` or ``"scan"`` (``None``: :func:`default_loop`)."""
    loop = loop or default_loop()
    if loop not in ("python", "scan"):
        raise ValueError(f"loop must be 'python' or 'scan', got {loop!r}")
    step = functools.partial(train_step, program=program)
    if loop == "python":
        return Loop(step)
    return Loop(step, functools.partial(train_chunk, program=program, length=chunk), chunk)


def advance(runner: Loop, params, state: State, hyper: Hyper, targets: Targets, n: int):
    """``n`` steps (at most ``runner.length`` with the scan form); returns the new state and the
    ``[n, R, len(STEP_COLUMNS)]`` rows, without waiting for them (no host synchronisation)."""
    if runner.chunk is not None:
        state, rows = runner.chunk(params, state, hyper, targets, jnp.int32(n))
        return state, rows[:n]
    rows = []
    for _ in range(n):
        state, row = runner.step(params, state, hyper, targets)
        rows.append(row)
    return state, jnp.stack(rows)


def optimize(
    params,
    program: Program,
    pixels: jax.Array,
    hyper: Hyper,
    targets: Targets,
    steps: int,
    *,
    loop: str | None = None,
    chunk: int = 50,
    on_chunk: Callable[[int, State, np.ndarray], np.ndarray | None] | None = None,
    start: Start | None = None,
    on_state: Callable[[Start], None] | None = None,
) -> Outcome:
    """Runs ``steps`` optimisation steps of a batch and returns the results.

    Args:
        params: VGG parameters, prepared for ``program.convolution`` (:func:`nstjax.vgg.prepare`).
        program: the static configuration.
        pixels: ``[R, H, W, 3]`` initial images, 0-255 units.
        hyper: per-run hyperparameters.
        targets: per-run targets.
        steps: the step budget: the batch stops earlier once every run has failed or converged
            (:class:`State`), checked after each chunk.
        loop: ``"python"`` (a jitted step called from Python) or ``"scan"`` (``chunk`` steps per
            compiled call); ``None`` picks :func:`default_loop`.
        chunk: steps between host synchronisations (progress, snapshots).
        on_chunk: called after each chunk with the number of steps done, the state and the
            ``[n, R, 4]`` loss terms of that chunk (host arrays); it may return a ``[R]``
            bool mask of runs to stop there, each alone (as if it had converged, but with
            ``converged_at`` left at -1).
        start: resume from here (a :class:`Start` saved by ``on_state``) instead of from
            ``pixels``' fresh state; the outcome is what an uninterrupted call gives.
        on_state: called after each chunk (after ``on_chunk``) with the progress as a
            :class:`Start`; its state is donated by the next chunk, so copy what you keep.

    Returns:
        An :class:`Outcome`.
    """
    runner = loop_for(program, loop, chunk)
    if start is None:
        state = init_state(program, jnp.array(pixels, jnp.float32, copy=True))  # donated below
        history, done = [], 0
    else:
        state = jax.tree.map(lambda x: jnp.array(x, copy=True), start.state)
        history, done = [np.asarray(start.rows)], int(start.state.step)
    while done < steps and np.any(np.asarray(state.active)):  # until every run stopped
        n = min(chunk, steps - done)
        state, rows = advance(runner, params, state, hyper, targets, n)
        rows = np.asarray(rows)
        done += n
        history.append(rows)
        if on_chunk is not None:
            stop = on_chunk(done, state, rows[..., : len(METRICS)])
            if stop is not None:
                state = state._replace(active=state.active & ~jnp.asarray(stop))
        if on_state is not None:
            on_state(Start(state, np.concatenate(history)))
    # The loss of the images as they are saved: clipped to the valid range.
    final = evaluate(params, jnp.clip(state.pixels, 0.0, 255.0), hyper, targets, program=program)
    runs = pixels.shape[0]
    rows = np.concatenate(history) if history else np.zeros((0, runs, len(STEP_COLUMNS)))
    return Outcome(
        pixels=np.asarray(state.pixels),
        history=rows[..., : len(METRICS)],
        final=np.asarray(final),
        failed_at=np.asarray(state.failed_at),
        converged_at=np.asarray(state.converged_at),
        evaluations=rows[..., len(METRICS)].astype(np.int64),
    )
