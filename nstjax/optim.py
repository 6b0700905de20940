"""Optimisers for ONE generated image, written to be vmapped over runs.

Two kinds, both an ``init(pixels) -> state`` and an ``update``:

- :class:`Optimizer` (Adam, fixed-step L-BFGS): ``update(grad, state, pixels, learning_rate)
  -> (new_pixels, new_state)``; the caller evaluates the gradient at ``pixels``, once per step.
- :class:`LineSearchOptimizer` (L-BFGS with a strong-Wolfe line search): ``update(value_and_grad,
  evaluation, state, pixels, learning_rate, search) -> (new_pixels, new_state, new_evaluation,
  evaluations)``. It evaluates the loss itself, as often as its line search needs, through
  ``value_and_grad`` (a point -> :class:`~nstjax.linesearch.Evaluation`); ``evaluation`` is the
  one at ``pixels`` (the caller evaluates it once, at the first step, then passes back the
  ``new_evaluation`` of the step before: the search already made it, so no step evaluates a
  point twice), and ``evaluations`` counts what the step made.

The learning rate is an argument (a traced per-run value), not a constant baked into the
transformation, so a batch of runs with different rates compiles once. Nothing couples runs:
under ``jax.vmap`` every run keeps its own moments or curvature history, and runs its own line
search.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from nstjax.linesearch import Conditions, Evaluation, Line, ValueAndGrad, strong_wolfe, vdot


class Optimizer(NamedTuple):
    """An optimiser of one image: ``init`` and ``update`` as described in the module docstring."""

    init: Callable[[jax.Array], Any]
    update: Callable[[jax.Array, Any, jax.Array, jax.Array], tuple[jax.Array, Any]]


def adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam (optax's ``scale_by_adam``) with the step size supplied per call."""
    transform = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)

    def update(grad, state, pixels, learning_rate):
        direction, state = transform.update(grad, state, pixels)
        return pixels - learning_rate * direction, state

    return Optimizer(transform.init, update)


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


def lbfgs(history: int = 20) -> Optimizer:
    """L-BFGS with a fixed step, as neural-style and neural-style-pt run ``torch.optim.LBFGS``.

    One gradient evaluation per iteration and no line search: the step is ``learning_rate``
    (1 is the natural value) along the two-loop direction, except the first, which is scaled by
    ``min(1, 1 / |g|_1)`` as in torch. A curvature pair is kept only when ``y . s > 1e-10``. The
    fixed cost per iteration is what lets a batch of runs advance in lockstep.

    Args:
        history: number of curvature pairs kept (neural-style-pt keeps 100; 20 costs a fifth of
            the memory traffic at nearly the same progress per step).
    """

    def update(grad, st, pixels, learning_rate):
        grad = grad.astype(st.prev_grad.dtype)
        first = st.iteration == 0
        d, st = _lbfgs_direction(grad, st)
        step = _first_step_scale(grad, first) * learning_rate * d
        st = st._replace(prev_grad=grad, prev_step=step, iteration=st.iteration + 1)
        return pixels + step.astype(pixels.dtype), st

    return Optimizer(lambda pixels: _lbfgs_init(pixels, history), update)


class LineSearchOptimizer(NamedTuple):
    """An optimiser of one image that evaluates the loss itself (module docstring)."""

    init: Callable[[jax.Array], Any]
    update: Callable[
        [ValueAndGrad, Evaluation, Any, jax.Array, jax.Array, jax.Array],
        tuple[jax.Array, Any, Evaluation, jax.Array],
    ]


FIRST_STEPS = ("polyak", "torch")
"""The first trial step rules of :func:`lbfgs_wolfe` (its docstring)."""


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
    history: int = 20,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_line_search: int = 25,
    first_step: str = "polyak",
) -> LineSearchOptimizer:
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
    accepted, as it mostly is once the memory has filled; at most ``max_line_search + 1``); the
    very first step of a run costs one more, the evaluation at the starting point, made by the
    caller. When the direction does not descend (``g . d > -tolerance_change``, at a stationary
    point) the step is zero and makes no evaluation (torch stops there).

    Args:
        history: number of curvature pairs kept.
        c1: sufficient-decrease constant of the Wolfe conditions (torch's 1e-4).
        c2: curvature constant (torch's 0.9).
        tolerance_change: torch's ``tolerance_change``, as its line search uses it.
        max_line_search: torch's ``max_ls``.
        first_step: the first trial step's rule, one of :data:`FIRST_STEPS`.
    """
    if first_step not in FIRST_STEPS:
        raise ValueError(f"first_step must be one of {FIRST_STEPS}, got {first_step!r}")

    def update(value_and_grad, evaluation, st, pixels, learning_rate, search=True):
        grad = evaluation.grad.astype(st.prev_grad.dtype)
        first = st.iteration == 0
        d, st = _lbfgs_direction(grad, st)
        gtd = vdot(grad, d)
        t = _first_trial_step(first_step, evaluation.value, grad, gtd, first, learning_rate)
        found = strong_wolfe(
            value_and_grad,
            Line(pixels, d, evaluation, gtd),
            t,
            search=jnp.logical_and(search, gtd <= -tolerance_change),
            conditions=Conditions(c1, c2, tolerance_change, max_line_search),
        )
        step = found.step * d
        st = st._replace(prev_grad=grad, prev_step=step, iteration=st.iteration + 1)
        return pixels + step.astype(pixels.dtype), st, found.evaluation, found.evaluations

    return LineSearchOptimizer(lambda pixels: _lbfgs_init(pixels, history), update)


OPTIMIZERS = ("adam", "lbfgs", "lbfgs_wolfe", "lbfgs_wolfe_torch")

WOLFE_C2 = 0.99
"""The curvature constant of ``lbfgs_wolfe`` (torch's, kept by ``lbfgs_wolfe_torch``, is 0.9).

Measured on the default stylisation at 256 px (docs/benchmarks.md): with 0.9 the unit step fails
the curvature test on a few steps where it decreases the loss well, and the search's extra
evaluations there cost more progress than they buy; with 0.99 the search intervenes only where
the step is too long (or, rarely, far too short), and the run is below the fixed step at every
evaluation budget measured. Any ``c2 < 1`` keeps ``y . s > 0``, so every pair stays usable."""


def make(name: str, lbfgs_history: int = 20) -> Optimizer | LineSearchOptimizer:
    """The optimiser called ``name``: ``"adam"``, ``"lbfgs"`` (fixed step), ``"lbfgs_wolfe"``
    (strong-Wolfe line search, first trial step ``"polyak"``, curvature constant
    :data:`WOLFE_C2`) or ``"lbfgs_wolfe_torch"`` (torch's line search: its first trial step and
    constants, so torch's iterates); the last two are :class:`LineSearchOptimizer` s."""
    if name == "adam":
        return adam()
    if name == "lbfgs":
        return lbfgs(lbfgs_history)
    if name == "lbfgs_wolfe":
        return lbfgs_wolfe(lbfgs_history, c2=WOLFE_C2, first_step="polyak")
    if name == "lbfgs_wolfe_torch":
        return lbfgs_wolfe(lbfgs_history, first_step="torch")
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
