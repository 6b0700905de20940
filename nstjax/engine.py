"""The compiled core: a batch of runs (generated images) optimised together.

Arrays in, arrays out. A *run* is one generated image with its own targets and hyperparameters;
every per-run quantity carries a leading run axis ``R`` and is traced, so a batch that varies
weights, layer weights, learning rates, seeds or initial images compiles once. Only the
:class:`Program` (which layers are computed, pooling, optimiser, dtype, remat) and the shapes are
static.

The loss of one run is written for one image and ``jax.vmap`` batches it, optimiser included, so
runs never interact: changing one run's hyperparameters leaves the others bit-identical.
"""

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nstjax import losses, optim, stopping, style_mix, vgg
from nstjax.architecture import LAYER_NAMES
from nstjax.loop import CHUNK, LOOPS, Hooks, Loop, advance, default_loop, run_chunks
from nstjax.outcome import Outcome, Start  # noqa: F401  (optimize's result and resume point)
from nstjax.program import Program

NUM_LAYERS = len(LAYER_NAMES)
METRICS = ("loss", "content", "style", "tv")
"""Columns of the per-step history: the total and its three unweighted-by-alpha/beta terms."""
STEP_COLUMNS = (*METRICS, "evaluations")
"""Columns of what a step returns per run: :data:`METRICS` before the step, then the loss/gradient
evaluations the step made for that run (0 once the run has stopped)."""


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
      pixels and the new optimiser state, which for a line search holds the loss and gradient
      at the new pixels) is not finite. The step is rejected, so the pixels stay the last
      finite ones;
    - it *converged*, before step ``k``: the relative loss change
      ``|f_k - f_{k-1}| / |f_{k-1}|`` (``f_k`` the loss at its pixels before step ``k``,
      ``k >= 1``) is at most ``Hyper.loss_tolerance``, or the gradient's max-norm at its pixels
      is at most ``Hyper.grad_tolerance`` (torch's ``tolerance_grad`` test).

    A stopped run is still computed with the batch (lockstep) but never changes again.
    """

    pixels: jax.Array  # [R, H, W, 3] in 0-255 units
    opt_state: Any  # the optimiser's (nstjax.optim.Optimizer)
    active: jax.Array  # [R] bool: False once a run failed or converged
    failed_at: jax.Array  # [R] int32: the step at which it failed, -1 if never
    step: jax.Array  # [] int32
    converged_at: jax.Array  # [R] int32: the step at which it converged, -1 if never
    evaluations: jax.Array  # [R] int32: loss/gradient evaluations made for the run so far
    last_loss: jax.Array  # [R] the loss before the previous step (for the relative change)


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
    runs = pixels.shape[0]
    like = optim.Evaluation(  # the shapes of an evaluation of run_loss
        value=jnp.zeros((runs,), jnp.float32),
        aux=jnp.zeros((runs, len(METRICS)), jnp.float32),
        grad=jnp.zeros_like(pixels),
    )
    opt_state = jax.vmap(program.make_optimizer().init)(pixels, like)
    return State(
        pixels=pixels,
        opt_state=opt_state,
        active=jnp.ones((runs,), bool),
        failed_at=jnp.full((runs,), -1, jnp.int32),
        step=jnp.int32(0),
        converged_at=jnp.full((runs,), -1, jnp.int32),
        evaluations=jnp.zeros((runs,), jnp.int32),
        last_loss=jnp.zeros((runs,), jnp.float32),
    )


def _one_step(params, program: Program, hyper: Hyper, targets: Targets, run: State):
    """One step of ONE run (``run`` without the run axis; ``run.step`` is the batch's)."""
    optimizer = program.make_optimizer()

    def value_fn(pixels):
        (value, metrics), grad = jax.value_and_grad(run_loss, argnums=2, has_aux=True)(
            params, program, pixels, hyper, targets, run.step
        )
        return optim.Evaluation(value, metrics, grad)

    # ``first`` is the batch's step, not per run, so that a line search's evaluation at step 0
    # (later ones are kept from the step before) stays a real conditional under vmap.
    here, opt_state = optimizer.evaluate(value_fn, run.opt_state, run.pixels, run.step == 0)
    finite_here = jnp.isfinite(here.value) & jnp.all(jnp.isfinite(here.grad))
    tolerances = (hyper.loss_tolerance, hyper.grad_tolerance)
    met = stopping.converged(here, run.last_loss, run.step, *tolerances)
    converged = run.active & finite_here & met
    moving = run.active & finite_here & ~converged
    updates, new_opt_state = optimizer.update(
        here.grad,
        opt_state,
        run.pixels,
        evaluation=here,
        value_fn=value_fn,
        learning_rate=hyper.learning_rate,
        moving=moving,
    )
    pixels = optax.apply_updates(run.pixels, updates)
    go = moving & stopping.all_finite((pixels, new_opt_state))
    failed = run.active & ~converged & ~go
    evaluations = jnp.where(run.active, optimizer.evaluations(new_opt_state), 0)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(go, a, b), new, old)
    new = State(
        pixels=keep(pixels, run.pixels),
        opt_state=keep(new_opt_state, opt_state),
        active=go,
        failed_at=jnp.where(failed, run.step, run.failed_at),
        step=run.step,
        converged_at=jnp.where(converged, run.step, run.converged_at),
        evaluations=run.evaluations + evaluations,
        last_loss=jnp.where(run.active, here.value, run.last_loss),
    )
    row = jnp.concatenate([here.aux, evaluations.astype(here.aux.dtype)[None]])
    return new, row


_RUN_AXES = State(**dict.fromkeys(State._fields, 0))._replace(step=None)  # step: the batch's


def batched_step(params, program: Program, state: State, hyper: Hyper, targets: Targets):
    """One optimisation step of every run in the batch.

    Returns:
        The new state and ``[R, 5]`` rows in :data:`STEP_COLUMNS` order: the loss terms BEFORE
        the step (:data:`METRICS`), then the evaluations the step made for each run.
    """
    step_fn = jax.vmap(
        functools.partial(_one_step, params, program),
        in_axes=(0, 0, _RUN_AXES),
        out_axes=(_RUN_AXES, 0),
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


def loop_for(program: Program, loop: str | None = None, chunk: int = CHUNK) -> Loop:
    """The loop :func:`optimize` runs: ``"python"`` or ``"scan"`` (``None``: :func:`default_loop`)."""
    loop = loop or default_loop()
    if loop not in LOOPS:
        raise ValueError(f"loop must be 'python' or 'scan', got {loop!r}")
    step = functools.partial(train_step, program=program)
    if loop == "python":
        return Loop(step)
    return Loop(step, functools.partial(train_chunk, program=program, length=chunk), chunk)


class Problem(NamedTuple):
    """What :func:`optimize` optimises: each run's initial image, hyperparameters and targets."""

    pixels: jax.Array  # [R, H, W, 3] initial images, 0-255 units
    hyper: Hyper
    targets: Targets


def optimize(
    params,
    program: Program,
    problem: Problem,
    steps: int,
    *,
    loop: str | None = None,
    chunk: int = CHUNK,
    hooks: Hooks | None = None,
    start: Start | None = None,
) -> Outcome:
    """Runs ``steps`` optimisation steps of a batch and returns the results.

    Args:
        params: VGG parameters, prepared for ``program.convolution`` (:func:`nstjax.vgg.prepare`).
        program: the static configuration.
        problem: the runs' initial images, hyperparameters and targets (a
            :class:`nstjax.batch.build.Built` will do).
        steps: the step budget: the batch stops earlier once every run has failed or converged
            (:class:`State`), checked after each chunk.
        loop: ``"python"`` (a jitted step called from Python) or ``"scan"`` (``chunk`` steps per
            compiled call); ``None`` picks :func:`default_loop`.
        chunk: steps between host synchronisations (progress, snapshots).
        hooks: what to call after each chunk (:class:`nstjax.loop.Hooks`: progress, a stop
            mask, the state to save).
        start: resume from here (a :class:`Start` saved by ``hooks.on_state``) instead of from
            ``problem.pixels``' fresh state; the outcome is what an uninterrupted call gives.

    Returns:
        An :class:`Outcome`.
    """
    pixels, hyper, targets = problem
    runner = loop_for(program, loop, chunk)
    state, history = _starting_point(program, pixels, start)
    hooks = hooks or Hooks()

    def loss_terms_of(done, state, rows):  # what on_chunk sees of the rows
        return hooks.on_chunk(done, state, rows[..., : len(METRICS)])

    state, history = run_chunks(
        lambda state, n: advance(runner, params, state, hyper, targets, n),
        state,
        history,
        steps,
        chunk,
        hooks._replace(on_chunk=hooks.on_chunk and loss_terms_of),
    )
    return _outcome(params, program, problem, state, history)


def _starting_point(program: Program, pixels, start: Start | None) -> tuple[State, list]:
    """The state to optimise from and the history rows so far: fresh at ``pixels``, or the
    resume point ``start`` (copied, since the state is donated)."""
    if start is None:
        return init_state(program, jnp.array(pixels, jnp.float32, copy=True)), []
    state = jax.tree.map(lambda x: jnp.array(x, copy=True), start.state)
    return state, [np.asarray(start.rows)]


def _outcome(params, program: Program, problem: Problem, state: State, history: list) -> Outcome:
    """What :func:`optimize` returns for the final ``state`` and the chunks' ``history`` rows."""
    pixels, hyper, targets = problem
    # The loss of the images as they are saved: clipped to the valid range.
    output = program.output_pixels(state.pixels, state.opt_state)
    final = evaluate(params, jnp.clip(output, 0.0, 255.0), hyper, targets, program=program)
    runs = pixels.shape[0]
    rows = np.concatenate(history) if history else np.zeros((0, runs, len(STEP_COLUMNS)))
    return Outcome(
        pixels=np.asarray(output),
        history=rows[..., : len(METRICS)],
        final=np.asarray(final),
        failed_at=np.asarray(state.failed_at),
        converged_at=np.asarray(state.converged_at),
        evaluations=rows[..., len(METRICS)].astype(np.int64),
    )
