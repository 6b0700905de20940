"""A strong-Wolfe line search for ONE run, written to be vmapped over runs.

A port of ``torch.optim.lbfgs._strong_wolfe`` (itself a port of ``lswolfe.lua`` from torch/optim):
a bracketing phase that extrapolates by cubic interpolation until an interval holding a point
that satisfies the strong Wolfe conditions is found, then a zoom phase that shrinks that
interval by cubic interpolation (with the same safeguards, constants and evaluation budget as
torch). Python control flow becomes one ``lax.while_loop`` that makes exactly one loss/gradient
evaluation per iteration; its phase (bracket, zoom, done) is part of the carry. Each piece of
torch's function is one function here: :func:`_bracket` (the bracketing loop),
:func:`_zoom_update` and :func:`_zoom_trial` (the zoom loop), :func:`cubic_interpolate`
(``_cubic_interpolate``), and :func:`_zoom_stops` and :func:`_result` (where torch stops and
what it returns).

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


class Conditions(NamedTuple):
    """The search's constants, with torch's defaults (``_strong_wolfe``'s keyword arguments)."""

    c1: float = 1e-4  # sufficient decrease: f(t) <= f + c1 t g.d
    c2: float = 0.9  # curvature: |g(t).d| <= -c2 g.d
    tolerance_change: float = 1e-9  # the zoom stops when the bracket is shorter (max-norm of t d)
    max_ls: int = 25  # at most max_ls + 1 evaluations


class Line(NamedTuple):
    """The line searched: the points ``x + t d``, ``t > 0``, from the evaluation at ``x``."""

    x: jax.Array  # the current point
    d: jax.Array  # the direction (a descent direction: gtd < 0)
    start: Evaluation  # at x (torch's f, g)
    gtd: jax.Array  # [] start.grad . d


TORCH_CONDITIONS = Conditions()
"""torch's constants, :func:`strong_wolfe`'s default."""


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


class _Search(NamedTuple):
    """What every phase reads: the loss, the line, the constants, and derived values."""

    value_and_grad: ValueAndGrad
    line: Line
    conditions: Conditions
    d_norm: jax.Array  # [] max |d|
    zero: jax.Array  # [] 0 in the search's dtype (that of f and g.d)

    def armijo_fails(self, t: jax.Array, new: Evaluation, gtd_new: jax.Array) -> jax.Array:
        """``f(t) > f + c1 t g.d``, or the point is not finite (this port's one difference)."""
        bad = ~jnp.isfinite(new.value) | ~jnp.isfinite(gtd_new)
        line = self.line
        return bad | (new.value > line.start.value + self.conditions.c1 * t * line.gtd)

    def curvature_holds(self, gtd_new: jax.Array) -> jax.Array:
        """``|g(t).d| <= -c2 g.d``: with sufficient decrease, the strong Wolfe conditions."""
        return jnp.abs(gtd_new) <= -self.conditions.c2 * self.line.gtd


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


def _lower(values: jax.Array) -> jax.Array:
    """The index (0 or 1) of the lower of two losses, a non-finite one counting as higher."""
    first = jnp.isfinite(values[0]) & ~(values[1] < values[0])  # ties: 0, as torch
    return jnp.where(first, 0, 1).astype(jnp.int32)


def _bracket(s: _Search, c: _Carry, new: Evaluation, gtd_new: jax.Array) -> _Carry:
    """torch's bracketing loop (``while ls_iter < max_ls`` in ``_strong_wolfe``) after the
    evaluation ``new`` at the trial ``c.t``: bracket ``[t_prev, t]`` and zoom, stop (the
    strong Wolfe conditions hold, or out of evaluations: bracket ``[0, t]``), or extrapolate
    by cubic interpolation in ``[t + 0.01 (t - t_prev), 10 t]``."""
    t_new, ls_iter, zero, gtd = c.t, c.evals - 1, s.zero, s.line.gtd
    maxed = ls_iter >= s.conditions.max_ls
    armijo = s.armijo_fails(t_new, new, gtd_new) | ((ls_iter > 1) & (new.value >= c.prev.value))
    wolfe = ~maxed & ~armijo & s.curvature_holds(gtd_new)
    to_zoom = ~maxed & (armijo | (~wolfe & (gtd_new >= 0)))
    extrapolate = ~maxed & ~to_zoom & ~wolfe
    # the bracket: [0, t] when out of evaluations, [t_prev, t] to zoom, [t] when done
    bt = jnp.where(maxed, jnp.stack([zero, t_new]), jnp.stack([c.t_prev, t_new]))
    b = _where(maxed, _pair(s.line.start, new), _pair(c.prev, new))
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
        new.value,
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


def _zoom_update(s: _Search, c: _Carry, new: Evaluation, gtd_new: jax.Array) -> _Carry:
    """torch's zoom loop after the evaluation ``new`` at the trial ``c.t``: the point replaces
    the bracket's high end when it is worse (torch's ``f_new > f + c1 * t * gtd or f_new >=
    bracket_f[low_pos]``), else its low end (the old low end first becoming the high end when
    the derivative says the minimum lies on the other side); ``done`` when the strong Wolfe
    conditions hold."""
    t_new, low = c.t, c.low
    high = 1 - low
    worse = s.armijo_fails(t_new, new, gtd_new) | (new.value >= c.b.value[low])
    # worse: the point becomes the high end
    w_bt, w_b, w_bgtd = (
        c.bt.at[high].set(t_new),
        _set(c.b, high, new),
        c.bgtd.at[high].set(gtd_new),
    )
    w_low = _lower(w_b.value)
    # better: the point becomes the low end
    wolfe = s.curvature_holds(gtd_new)
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


def _zoom_stops(s: _Search, c: _Carry) -> jax.Array:
    """torch's zoom loop ends: ``while not done and ls_iter < max_ls``, and its ``break`` when
    the bracket is shorter than ``tolerance_change`` along ``d``."""
    short = jnp.abs(c.bt[1] - c.bt[0]) * s.d_norm < s.conditions.tolerance_change
    return c.done | (c.evals - 1 >= s.conditions.max_ls) | short


def _zoom_trial(s: _Search, c: _Carry) -> _Carry:
    """torch's zoom loop head: stop, or the next trial, the bracket's cubic minimiser moved
    ``0.1`` of the bracket inside it when it lands near an end twice running (torch's
    ``insuf_progress`` safeguard) or outside it."""
    lo, hi = jnp.min(c.bt), jnp.max(c.bt)
    t_new = cubic_interpolate(c.bt[0], c.b.value[0], c.bgtd[0], c.bt[1], c.b.value[1], c.bgtd[1])
    eps = 0.1 * (hi - lo)
    near_end = jnp.minimum(hi - t_new, t_new - lo) < eps
    move = near_end & (c.insuf | (t_new >= hi) | (t_new <= lo))
    moved = jnp.where(jnp.abs(t_new - hi) < jnp.abs(t_new - lo), hi - eps, lo + eps)
    zoomed = c._replace(
        t=jnp.where(move, moved, t_new), insuf=near_end & ~move, phase=jnp.int32(ZOOM)
    )
    return _where(_zoom_stops(s, c), c._replace(phase=jnp.int32(DONE)), zoomed)


def _evaluate_trial(s: _Search, c: _Carry) -> _Carry:
    """One iteration: the evaluation at the trial ``c.t``, taken in by the phase's rule, then
    the zoom's next trial (or its end)."""
    line = s.line
    new = s.value_and_grad(line.x + (c.t * line.d).astype(line.x.dtype))
    gtd_new = vdot(new.grad, line.d).astype(s.zero.dtype)
    c = c._replace(evals=c.evals + 1)
    zooming = c.phase == ZOOM
    c = _where(zooming, _zoom_update(s, c, new, gtd_new), _bracket(s, c, new, gtd_new))
    return _where(c.phase == ZOOM, _zoom_trial(s, c), c)


def _start(s: _Search, t: jax.Array, search: jax.Array | bool) -> _Carry:
    """The carry before the first evaluation: bracketing from ``t_prev = 0`` (torch's
    ``t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd``), or done at once without ``search``."""
    zero, current, gtd = s.zero, s.line.start, s.line.gtd
    return _Carry(
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


def _result(c: _Carry) -> SearchResult:
    """torch's ``# return stuff``: the bracket's low end (``bracket[low_pos]``)."""
    return SearchResult(c.bt[c.low], _get(c.b, c.low), c.evals)


def strong_wolfe(
    value_and_grad: ValueAndGrad,
    line: Line,
    t: jax.Array,
    search: jax.Array | bool = True,
    conditions: Conditions = TORCH_CONDITIONS,
) -> SearchResult:
    """A step along ``line.d`` from ``line.x`` satisfying the strong Wolfe conditions, as torch's
    ``_strong_wolfe`` finds it.

    Args:
        value_and_grad: the run's loss and gradient at a point.
        line: the point, the direction, the evaluation there and its directional derivative.
        t: the first trial step.
        search: ``False`` makes no evaluation and returns step 0 with ``line.start`` (a run that
            has stopped, or a direction that does not descend).
        conditions: the constants (torch's by default).

    Returns:
        A :class:`SearchResult`: the accepted step, the evaluation there, evaluations made.
    """
    dtype = jnp.result_type(line.start.value, line.gtd)
    zero = jnp.zeros((), dtype)
    s = _Search(value_and_grad, line, conditions, jnp.max(jnp.abs(line.d)), zero)
    start = _start(s, jnp.asarray(t, dtype), search)
    end = jax.lax.while_loop(lambda c: c.phase != DONE, lambda c: _evaluate_trial(s, c), start)
    return _result(end)
