"""Optimisers for ONE generated image, written to be vmapped over runs.

Every optimiser is an :class:`Optimizer`, one protocol for Adam, fixed-step L-BFGS and L-BFGS
with a line search, modelled on optax's ``GradientTransformationExtraArgs`` (whose ``update``
takes ``value=``, ``grad=`` and ``value_fn=``, as ``optax.lbfgs`` and
``optax.scale_by_zoom_linesearch`` need), so a caller runs them all alike::

    state = opt.init(pixels, like)  # like: an Evaluation of value_fn's shapes
    for step in range(steps):
        here, state = opt.evaluate(value_fn, state, pixels, step == 0)
        updates, state = opt.update(
            here.grad, state, pixels,
            evaluation=here, value_fn=value_fn, learning_rate=lr, moving=True,
        )
        pixels = optax.apply_updates(pixels, updates)
        made = opt.evaluations(state)  # loss/gradient evaluations this step made

``value_fn`` maps a point to its :class:`~nstjax.linesearch.Evaluation` (the loss, whatever
comes with it, and the gradient). The fixed-step optimisers evaluate once per step, in
``evaluate``; a line search evaluates as often as it needs in ``update`` and keeps the
evaluation at the point it accepts, which the next ``evaluate`` returns instead of evaluating
again (optax's ``value_and_grad_from_state``), so no step evaluates a point twice.

The learning rate is an argument (a traced per-run value), not a constant baked into the
transformation, so a batch of runs with different rates compiles once. Nothing couples runs:
under ``jax.vmap`` every run keeps its own moments or curvature history, and runs its own line
search.
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from nstjax.linesearch import (
    TORCH_CONDITIONS,
    Conditions,
    Evaluation,
    Line,
    ValueAndGrad,
    strong_wolfe,
    vdot,
)

LBFGS_HISTORY = 20
"""Curvature pairs kept by L-BFGS by default (neural-style-pt keeps 100; 20 costs a fifth of the
memory traffic at nearly the same progress per step)."""

OPTIMIZERS = ("adam", "lbfgs", "lbfgs_wolfe", "lbfgs_wolfe_torch")

WOLFE_C2 = 0.99
"""The curvature constant of ``lbfgs_wolfe`` (torch's, kept by ``lbfgs_wolfe_torch``, is 0.9).

Measured on the default stylisation at 256 px (docs/benchmarks.md): with 0.9 the unit step fails
the curvature test on a few steps where it decreases the loss well, and the search's extra
evaluations there cost more progress than they buy; with 0.99 the search intervenes only where
the step is too long (or, rarely, far too short), and the run is below the fixed step at every
evaluation budget measured. Any ``c2 < 1`` keeps ``y . s > 0``, so every pair stays usable."""

FIRST_STEPS = ("polyak", "torch")
"""The first trial step rules of :func:`lbfgs_wolfe` (its docstring)."""


class Update(Protocol):
    """An optimiser's ``update``: the updates to add to ``pixels`` and the new state.

    Args:
        grad: the gradient at ``pixels`` (first, as optax's ``updates``).
        state: the state after :attr:`Optimizer.evaluate`.
        pixels: the current point.
        evaluation: the :class:`Evaluation` at ``pixels`` (optax's ``value=`` and ``grad=``,
            with what comes with the value).
        value_fn: a point -> its :class:`Evaluation`, for a line search.
        learning_rate: ``[]`` the step size (a line search's first trial step).
        moving: ``False`` for a run that has stopped: a line search makes no evaluation (the
            caller discards the result).
    """

    def __call__(
        self,
        grad: jax.Array,
        state: Any,
        pixels: jax.Array,
        *,
        evaluation: Evaluation,
        value_fn: ValueAndGrad,
        learning_rate: jax.Array,
        moving: jax.Array | bool,
    ) -> tuple[jax.Array, Any]: ...


class Optimizer(NamedTuple):
    """An optimiser of one image (the module docstring shows a step).

    Attributes:
        init: ``(pixels, like) -> state``; ``like`` is an :class:`Evaluation` with
            ``value_fn``'s shapes (its values are not used).
        evaluate: ``(value_fn, state, pixels, first) -> (evaluation, state)``: the evaluation
            at ``pixels``, made there or kept by the last ``update`` (always made when
            ``first``, the run's first step).
        update: :class:`Update`.
        evaluations: ``state -> []`` int32, the evaluations the step (``evaluate`` and
            ``update``) made.
    """

    init: Callable[[jax.Array, Evaluation], Any]
    evaluate: Callable[[ValueAndGrad, Any, jax.Array, jax.Array | bool], tuple[Evaluation, Any]]
    update: Update
    evaluations: Callable[[Any], jax.Array]


def _evaluating_every_step(init: Callable[[jax.Array], Any], update: Update) -> Optimizer:
    """An optimiser that takes the gradient at ``pixels``, evaluated once per step."""
    return Optimizer(
        init=lambda pixels, like: init(pixels),
        evaluate=lambda value_fn, state, pixels, first: (value_fn(pixels), state),
        update=update,
        evaluations=lambda state: jnp.int32(1),
    )


def adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam (optax's ``scale_by_adam``) with the step size supplied per call."""
    transform = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)

    def update(grad, state, pixels, *, learning_rate, **_):
        direction, state = transform.update(grad, state, pixels)
        return -learning_rate * direction, state

    return _evaluating_every_step(transform.init, update)


class LbfgsState(NamedTuple):
    """Curvature pairs in a ring buffer, newest at ``head - 1``."""

    s: jax.Array  # [m, *shape] steps x_{k+1} - x_k
    y: jax.Array  # [m, *shape] gradient differences
    rho: jax.Array  # [m] 1 / (y . s)
    count: jax.Array  # pairs stored (<= m)
    head: jax.Array  # next slot to write
    h_diag: jax.Array  # initial inverse-Hessian scale (y.s / y.y of the newest pair)
    prev_grad: jax.Array
    prev_step: jax.Array
    iteration: jax.Array


def _lbfgs_init(pixels: jax.Array, m: int) -> LbfgsState:
    dtype = jnp.promote_types(pixels.dtype, jnp.float32)  # float32, or float64 under x64
    zeros = jnp.zeros((m, *pixels.shape), dtype)
    return LbfgsState(
        s=zeros,
        y=zeros,
        rho=jnp.zeros((m,), dtype),
        count=jnp.int32(0),
        head=jnp.int32(0),
        h_diag=jnp.ones((), dtype),
        prev_grad=jnp.zeros(pixels.shape, dtype),
        prev_step=jnp.zeros(pixels.shape, dtype),
        iteration=jnp.int32(0),
    )


def _lbfgs_direction(grad: jax.Array, st: LbfgsState) -> tuple[jax.Array, LbfgsState]:
    """Stores the pair of the previous step (if ``y . s > 1e-10``) and returns the two-loop
    direction ``-H g`` with the updated memory. ``grad`` is in the state's dtype."""
    m = st.s.shape[0]
    first = st.iteration == 0
    y = grad - st.prev_grad
    ys = vdot(y, st.prev_step)
    keep = jnp.logical_and(jnp.logical_not(first), ys > 1e-10)
    slot = st.head
    st = st._replace(
        # Only one slot changes: select within it rather than over the whole buffer.
        s=st.s.at[slot].set(jnp.where(keep, st.prev_step, st.s[slot])),
        y=st.y.at[slot].set(jnp.where(keep, y, st.y[slot])),
        rho=st.rho.at[slot].set(jnp.where(keep, 1.0 / jnp.where(keep, ys, 1.0), st.rho[slot])),
        count=jnp.where(keep, jnp.minimum(st.count + 1, m), st.count),
        head=jnp.where(keep, (st.head + 1) % m, st.head),
        h_diag=jnp.where(keep, ys / jnp.maximum(vdot(y, y), 1e-30), st.h_diag),
    )

    def newest_first(i, carry):
        q, alphas = carry
        idx = (st.head - 1 - i) % m
        alpha = jnp.where(i < st.count, st.rho[idx] * vdot(st.s[idx], q), 0.0)
        return q - alpha * st.y[idx], alphas.at[idx].set(alpha)

    q, alphas = jax.lax.fori_loop(0, m, newest_first, (-grad, jnp.zeros_like(st.rho)))

    def oldest_first(i, r):
        idx = (st.head - st.count + i) % m
        beta = st.rho[idx] * vdot(st.y[idx], r)
        return r + jnp.where(i < st.count, alphas[idx] - beta, 0.0) * st.s[idx]

    return jax.lax.fori_loop(0, m, oldest_first, q * st.h_diag), st


def _first_step_scale(grad: jax.Array, first: jax.Array) -> jax.Array:
    """torch's first step: ``min(1, 1 / |g|_1)`` (the direction is then ``-g``); 1 later."""
    scale = jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.sum(jnp.abs(grad)), 1e-30))
    return jnp.where(first, scale, 1.0)


def lbfgs(history: int = LBFGS_HISTORY) -> Optimizer:
    """L-BFGS with a fixed step, as neural-style and neural-style-pt run ``torch.optim.LBFGS``.

    One gradient evaluation per iteration and no line search: the step is ``learning_rate``
    (1 is the natural value) along the two-loop direction, except the first, which is scaled by
    ``min(1, 1 / |g|_1)`` as in torch. A curvature pair is kept only when ``y . s > 1e-10``. The
    fixed cost per iteration is what lets a batch of runs advance in lockstep.

    Args:
        history: number of curvature pairs kept (:data:`LBFGS_HISTORY`).
    """

    def update(grad, st, pixels, *, learning_rate, **_):
        grad = grad.astype(st.prev_grad.dtype)
        first = st.iteration == 0
        d, st = _lbfgs_direction(grad, st)
        step = _first_step_scale(grad, first) * learning_rate * d
        st = st._replace(prev_grad=grad, prev_step=step, iteration=st.iteration + 1)
        return step.astype(pixels.dtype), st

    return _evaluating_every_step(lambda pixels: _lbfgs_init(pixels, history), update)


class LineSearchState(NamedTuple):
    """:func:`lbfgs_wolfe`'s state: the L-BFGS memory and the evaluation at the pixels."""

    memory: LbfgsState
    evaluation: Evaluation  # at the pixels: the search's accepted point (optax keeps it too)
    evaluations: jax.Array  # [] int32 made by the step so far


def _first_trial_step(rule: str, value, grad, gtd, first, learning_rate):
    """The line search's first trial step: ``learning_rate``, scaled at the run's first step."""
    if rule == "torch":
        scale = _first_step_scale(grad, first)
    else:  # "polyak": where the linear model f + t g.d reaches 0, the nonnegative loss's bound
        value = value.astype(gtd.dtype)
        fallback = _first_step_scale(grad, True).astype(gtd.dtype)
        usable = jnp.isfinite(value) & (value > 0) & (gtd < 0)
        polyak = value / jnp.where(usable, -gtd, 1.0)
        scale = jnp.where(first, jnp.where(usable, polyak, fallback), 1.0)
    return (scale * learning_rate).astype(gtd.dtype)


def lbfgs_wolfe(
    history: int = LBFGS_HISTORY,
    conditions: Conditions = TORCH_CONDITIONS,
    first_step: str = "polyak",
) -> Optimizer:
    """L-BFGS with a strong-Wolfe line search: one iteration of
    ``torch.optim.LBFGS(line_search_fn="strong_wolfe")`` per step, torch's first trial step or a
    better-scaled one.

    The direction and memory are those of :func:`lbfgs`; the first trial step is
    ``learning_rate`` (1 is natural: the quasi-Newton step), except at a run's first step, where
    the direction is ``-g`` and carries no curvature scale, so the trial is scaled by
    ``first_step``:

    - ``"polyak"``: ``f / |g|^2`` (``-f / g.d``), the step at which the linear model
      ``f + t g.d`` reaches 0, the lower bound of a nonnegative loss (Polyak's step with
      ``f* = 0``; equivalently Nocedal & Wright's initial-step interpolation, *Numerical
      Optimization* 2nd ed. eq. 3.60, with the expected first decrease taken as ``f / 2``).
      Invariant to the loss's scale; where the loss is not positive,
      torch's rule.
    - ``"torch"``: ``min(1, 1 / |g|_1)``, torch's; a sum over pixels, so it shrinks with the
      image (about 1e-6 at 256 px, where the best step along ``-g`` is about 1, so torch's first
      search extrapolates for ~8 evaluations; docs/benchmarks.md).

    :func:`nstjax.linesearch.strong_wolfe` then moves the trial until the strong Wolfe
    conditions hold. A step costs the line search's evaluations (1 when the first trial is
    accepted, as it mostly is once the memory has filled; at most ``conditions.max_ls + 1``);
    the very first step of a run costs one more, the evaluation at the starting point, made by
    ``evaluate``. When the direction does not descend (``g . d > -tolerance_change``, at a
    stationary point) the step is zero and makes no evaluation (torch stops there).

    Args:
        history: number of curvature pairs kept (:data:`LBFGS_HISTORY`).
        conditions: the line search's constants (torch's ``c1``, ``c2``, ``tolerance_change``,
            ``max_ls``; :data:`nstjax.linesearch.TORCH_CONDITIONS`).
        first_step: the first trial step's rule, one of :data:`FIRST_STEPS`.
    """
    if first_step not in FIRST_STEPS:
        raise ValueError(f"first_step must be one of {FIRST_STEPS}, got {first_step!r}")

    def init(pixels, like):
        return LineSearchState(_lbfgs_init(pixels, history), like, jnp.int32(0))

    update = functools.partial(_searched_update, conditions, first_step)
    return Optimizer(init, _kept_evaluation, update, lambda st: st.evaluations)


def _kept_evaluation(value_fn, st: LineSearchState, pixels, first):
    """:func:`lbfgs_wolfe`'s ``evaluate``: the evaluation the last search accepted, made at
    ``pixels`` only at the run's ``first`` step."""
    here = jax.lax.cond(first, value_fn, lambda _: st.evaluation, pixels)
    return here, st._replace(evaluation=here, evaluations=jnp.asarray(first, jnp.int32))


def _searched_update(
    conditions: Conditions,
    first_step: str,
    grad,
    st: LineSearchState,
    pixels,
    *,
    evaluation,
    value_fn,
    learning_rate,
    moving=True,
    **_,
):
    """:func:`lbfgs_wolfe`'s ``update`` (:class:`Update`): the L-BFGS direction and a strong-Wolfe
    search along it from the first trial step ``first_step`` names."""
    memory = st.memory
    grad = grad.astype(memory.prev_grad.dtype)
    first = memory.iteration == 0
    d, memory = _lbfgs_direction(grad, memory)
    gtd = vdot(grad, d)
    t = _first_trial_step(first_step, evaluation.value, grad, gtd, first, learning_rate)
    descends = gtd <= -conditions.tolerance_change
    line = Line(pixels, d, evaluation, gtd)
    found = strong_wolfe(value_fn, line, t, jnp.logical_and(moving, descends), conditions)
    step = found.step * d
    memory = memory._replace(prev_grad=grad, prev_step=step, iteration=memory.iteration + 1)
    made = st.evaluations + found.evaluations
    return step.astype(pixels.dtype), LineSearchState(memory, found.evaluation, made)


def make(name: str, lbfgs_history: int = LBFGS_HISTORY) -> Optimizer:
    """The optimiser called ``name``: ``"adam"``, ``"lbfgs"`` (fixed step), ``"lbfgs_wolfe"``
    (strong-Wolfe line search, first trial step ``"polyak"``, curvature constant
    :data:`WOLFE_C2`) or ``"lbfgs_wolfe_torch"`` (torch's line search: its first trial step and
    constants, so torch's iterates)."""
    if name == "adam":
        return adam()
    if name == "lbfgs":
        return lbfgs(lbfgs_history)
    if name == "lbfgs_wolfe":
        wolfe = TORCH_CONDITIONS._replace(c2=WOLFE_C2)
        return lbfgs_wolfe(lbfgs_history, wolfe, first_step="polyak")
    if name == "lbfgs_wolfe_torch":
        return lbfgs_wolfe(lbfgs_history, first_step="torch")
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
