"""A strong-Wolfe line search for ONE run, written to be vmapped over runs.

A port of ``torch.optim.lbfgs._strong_wolfe`` (itself a port of ``lswolfe.lua`` from torch/optim):
a bracketing phase that extrapolates by cubic interpolation until an interval holding a point
that satisfies the strong Wolfe conditions is found, then a zoom phase that shrinks that
interval by cubic interpolation (with the same safeguards, constants and evaluation budget as
torch). Python control flow becomes one ``lax.while_loop`` that makes exactly one loss/gradient
evaluation per iteration; its phase (bracket, zoom, done) is part of the carry.

Under ``jax.vmap`` the loop runs until every run's search is done; JAX masks the runs that are
done (their carry is selected unchanged), so one run's search never changes another's values,
but every iteration evaluates the whole batch: a batch costs the maximum over its runs of the
evaluations per search.

One deliberate difference from torch: a trial point whose loss or directional derivative is not
finite counts as failing the sufficient-decrease test (the interval shrinks towards the last good
point) instead of propagating NaN into the interpolation. On finite problems the two agree.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

BRACKET, ZOOM, DONE = 0, 1, 2


class Evaluation(NamedTuple):
    """The loss of one run at one point, whatever came with it, and its gradient."""

    value: jax.Array  # [] the loss
    aux: Any  # carried along with the value (the engine: the [4] loss terms)
    grad: jax.Array  # like the point


ValueAndGrad = Callable[[jax.Array], Evaluation]
"""A point -> its :class:`Evaluation` (one loss/gradient evaluation)."""


class SearchResult(NamedTuple):
    step: jax.Array  # [] the accepted step length t (0 when no search was made)
    evaluation: Evaluation  # at point + step * direction
    evaluations: jax.Array  # [] int32 loss/gradient evaluations made


def vdot(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a . b`` accumulated in at least float32."""
    dtype = jnp.promote_types(jnp.promote_types(a.dtype, b.dtype), jnp.float32)
    return jnp.vdot(a.astype(dtype), b.astype(dtype))


def cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimiser of the cubic through ``(x1, f1, g1)`` and ``(x2, f2, g2)``, clipped to
    ``bounds`` (default: the interval between ``x1`` and ``x2``); their midpoint when the cubic
    has no real minimiser. torch's ``_cubic_interpolate``, with two safeguards torch lacks.

    The minimiser does not change when ``f`` and ``g`` are scaled by one constant, so they are
    divided by the largest slope first: torch squares the raw derivatives, which overflows
    float32 on losses of ~1e13 (the paper's sums; their slopes along a step reach 1e23). And a
    result that is not finite (a non-finite value at either end) falls back to the midpoint.
    """
    lo, hi = bounds if bounds is not None else (jnp.minimum(x1, x2), jnp.maximum(x1, x2))
    secant = (f1 - f2) / (x1 - x2)
    scale = jnp.maximum(jnp.maximum(jnp.abs(g1), jnp.abs(g2)), jnp.abs(secant))
    scale = jnp.where(jnp.isfinite(scale) & (scale > 0), scale, 1.0)
    g1, g2, secant = g1 / scale, g2 / scale, secant / scale
    d1 = g1 + g2 - 3 * secant
    d2_square = d1**2 - g1 * g2
    d2 = jnp.sqrt(jnp.maximum(d2_square, 0.0))
    min_pos = jnp.where(
        x1 <= x2,
        x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2)),
        x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2)),
    )
    midpoint = (lo + hi) / 2.0
    found = jnp.where(d2_square >= 0, jnp.minimum(jnp.maximum(min_pos, lo), hi), midpoint)
    return jnp.where(jnp.isfinite(found), found, midpoint)


def _lower(values: jax.Array) -> jax.Array:
    """The index (0 or 1) of the lower of two losses, a non-finite one counting as higher."""
    first = jnp.isfinite(values[0]) & ~(values[1] < values[0])  # ties: 0, as torch
    return jnp.where(first, 0, 1).astype(jnp.int32)


class _Carry(NamedTuple):
    phase: jax.Array  # BRACKET, ZOOM or DONE
    t: jax.Array  # the next trial step (BRACKET, ZOOM)
    evals: jax.Array  # evaluations so far (torch's ls_iter is evals - 1)
    t_prev: jax.Array  # bracketing: the previous trial ...
    prev: Evaluation  # ... its evaluation ...
    gtd_prev: jax.Array  # ... and directional derivative
    bt: jax.Array  # [2] the bracket's steps
    b: Evaluation  # [2, ...] their evaluations
    bgtd: jax.Array  # [2] their directional derivatives
    low: jax.Array  # index of the bracket's lower loss
    done: jax.Array  # the strong Wolfe conditions hold at bt[low]
    insuf: jax.Array  # zoom: the last trial made insufficient progress


def _where(cond, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _pair(first, second):
    return jax.tree.map(lambda x, y: jnp.stack([x, y]), first, second)


def _set(tree, index, value):
    return jax.tree.map(lambda arr, v: arr.at[index].set(v), tree, value)


def _get(tree, index):
    return jax.tree.map(lambda arr: arr[index], tree)


def strong_wolfe(
    value_and_grad: ValueAndGrad,
    x: jax.Array,
    t: jax.Array,
    d: jax.Array,
    current: Evaluation,
    gtd: jax.Array,
    search: jax.Array | bool = True,
    c1: float = 1e-4,
    c2: float = 0.9,
    tolerance_change: float = 1e-9,
    max_ls: int = 25,
) -> SearchResult:
    """A step along ``d`` from ``x`` satisfying the strong Wolfe conditions, as torch finds it.

    Args:
        value_and_grad: the run's loss and gradient at a point.
        x: the current point.
        t: the first trial step.
        d: the search direction (a descent direction: ``gtd < 0``).
        current: the evaluation at ``x``.
        gtd: ``current.grad . d``.
        search: ``False`` makes no evaluation and returns step 0 with ``current`` (a run that
            has stopped, or a direction that does not descend).
        c1: sufficient-decrease constant.
        c2: curvature constant.
        tolerance_change: the zoom stops when the bracket is shorter than this along ``d``
            (in the units of ``x``, max-norm).
        max_ls: at most ``max_ls + 1`` evaluations (torch's ``max_ls``).

    Returns:
        A :class:`SearchResult`: the accepted step, the evaluation there, evaluations made.
    """
    f = current.value
    d_norm = jnp.max(jnp.abs(d))
    dtype = jnp.result_type(f, gtd)
    t = jnp.asarray(t, dtype)
    zero = jnp.zeros((), dtype)

    def decide_bracket(c: _Carry, t_new, new: Evaluation, gtd_new) -> _Carry:
        """torch's bracketing loop after an evaluation at ``t_new``."""
        f_new, ls_iter = new.value, c.evals - 1
        bad = ~jnp.isfinite(f_new) | ~jnp.isfinite(gtd_new)
        maxed = ls_iter >= max_ls
        armijo = bad | (f_new > f + c1 * t_new * gtd) | ((ls_iter > 1) & (f_new >= c.prev.value))
        wolfe = ~maxed & ~armijo & (jnp.abs(gtd_new) <= -c2 * gtd)
        to_zoom = ~maxed & (armijo | (~wolfe & (gtd_new >= 0)))
        extrapolate = ~maxed & ~to_zoom & ~wolfe
        # the bracket: [0, t] when out of evaluations, [t_prev, t] to zoom, [t] when done
        bt = jnp.where(maxed, jnp.stack([zero, t_new]), jnp.stack([c.t_prev, t_new]))
        b = _where(maxed, _pair(current, new), _pair(c.prev, new))
        bgtd = jnp.where(maxed, jnp.stack([gtd, gtd_new]), jnp.stack([c.gtd_prev, gtd_new]))
        low = _lower(b.value)
        bt = jnp.where(wolfe, jnp.stack([t_new, t_new]), bt)
        b = _where(wolfe, _pair(new, new), b)
        low = jnp.where(wolfe, 0, low).astype(jnp.int32)
        t_next = cubic_interpolate(
            c.t_prev,
            c.prev.value,
            c.gtd_prev,
            t_new,
            f_new,
            gtd_new,
            bounds=(t_new + 0.01 * (t_new - c.t_prev), t_new * 10),
        )
        phase = jnp.where(extrapolate, BRACKET, jnp.where(to_zoom, ZOOM, DONE)).astype(jnp.int32)
        stepped = c._replace(
            t=jnp.where(extrapolate, t_next, c.t),
            t_prev=jnp.where(extrapolate, t_new, c.t_prev),
            prev=_where(extrapolate, new, c.prev),
            gtd_prev=jnp.where(extrapolate, gtd_new, c.gtd_prev),
        )
        bracketed = c._replace(phase=phase, bt=bt, b=b, bgtd=bgtd, low=low, done=wolfe)
        return _where(extrapolate, stepped._replace(phase=phase), bracketed)

    def absorb_zoom(c: _Carry, t_new, new: Evaluation, gtd_new) -> _Carry:
        """torch's zoom loop after an evaluation at ``t_new``: the point replaces an end."""
        f_new, low = new.value, c.low
        high = 1 - low
        bad = ~jnp.isfinite(f_new) | ~jnp.isfinite(gtd_new)
        worse = bad | (f_new > f + c1 * t_new * gtd) | (f_new >= c.b.value[low])
        # worse: the point becomes the high end
        w_bt, w_b, w_bgtd = (
            c.bt.at[high].set(t_new),
            _set(c.b, high, new),
            c.bgtd.at[high].set(gtd_new),
        )
        w_low = _lower(w_b.value)
        # better: the point becomes the low end (the old low first becomes the high end when the
        # derivative says the minimum lies on the other side)
        wolfe = jnp.abs(gtd_new) <= -c2 * gtd
        flip = ~wolfe & (gtd_new * (c.bt[high] - c.bt[low]) >= 0)
        g_bt = jnp.where(flip, c.bt.at[high].set(c.bt[low]), c.bt)
        g_b = _where(flip, _set(c.b, high, _get(c.b, low)), c.b)
        g_bgtd = jnp.where(flip, c.bgtd.at[high].set(c.bgtd[low]), c.bgtd)
        g_bt, g_b, g_bgtd = (
            g_bt.at[low].set(t_new),
            _set(g_b, low, new),
            g_bgtd.at[low].set(gtd_new),
        )
        return c._replace(
            bt=jnp.where(worse, w_bt, g_bt),
            b=_where(worse, w_b, g_b),
            bgtd=jnp.where(worse, w_bgtd, g_bgtd),
            low=jnp.where(worse, w_low, low),
            done=~worse & wolfe,
        )

    def decide_zoom(c: _Carry) -> _Carry:
        """torch's zoom loop head: stop, or the next trial step (safeguarded cubic)."""
        lo, hi = jnp.min(c.bt), jnp.max(c.bt)
        stop = (
            c.done
            | (c.evals - 1 >= max_ls)
            | (jnp.abs(c.bt[1] - c.bt[0]) * d_norm < tolerance_change)
        )
        t_new = cubic_interpolate(
            c.bt[0], c.b.value[0], c.bgtd[0], c.bt[1], c.b.value[1], c.bgtd[1]
        )
        eps = 0.1 * (hi - lo)
        near_end = jnp.minimum(hi - t_new, t_new - lo) < eps
        move = near_end & (c.insuf | (t_new >= hi) | (t_new <= lo))
        moved = jnp.where(jnp.abs(t_new - hi) < jnp.abs(t_new - lo), hi - eps, lo + eps)
        zoomed = c._replace(
            t=jnp.where(move, moved, t_new), insuf=near_end & ~move, phase=jnp.int32(ZOOM)
        )
        return _where(stop, c._replace(phase=jnp.int32(DONE)), zoomed)

    def body(c: _Carry) -> _Carry:
        new = value_and_grad(x + (c.t * d).astype(x.dtype))
        gtd_new = vdot(new.grad, d).astype(dtype)
        c = c._replace(evals=c.evals + 1)
        zooming = c.phase == ZOOM
        c = _where(zooming, absorb_zoom(c, c.t, new, gtd_new), decide_bracket(c, c.t, new, gtd_new))
        return _where(c.phase == ZOOM, decide_zoom(c), c)

    start = _Carry(
        phase=jnp.where(search, BRACKET, DONE).astype(jnp.int32),
        t=t,
        evals=jnp.int32(0),
        t_prev=zero,
        prev=current,
        gtd_prev=gtd,
        bt=jnp.stack([zero, zero]),
        b=_pair(current, current),
        bgtd=jnp.stack([gtd, gtd]),
        low=jnp.int32(0),
        done=jnp.bool_(False),
        insuf=jnp.bool_(False),
    )
    end = jax.lax.while_loop(lambda c: c.phase != DONE, body, start)
    return SearchResult(end.bt[end.low], _get(end.b, end.low), end.evals)
