"""Optimisers for ONE generated image, written to be vmapped over runs.

Each optimiser is an ``init(pixels) -> state`` and an ``update(grad, state, pixels, learning_rate)
-> (new_pixels, new_state)`` pair. The learning rate is an argument (a traced per-run value), not a
constant baked into the transformation, so a batch of runs with different rates compiles once.
Nothing couples runs: under ``jax.vmap`` every run keeps its own moments or curvature history.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


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


def _vdot(a: jax.Array, b: jax.Array) -> jax.Array:
    return jnp.vdot(a.astype(jnp.float32), b.astype(jnp.float32))


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
    m = history

    def init(pixels):
        zeros = jnp.zeros((m, *pixels.shape), jnp.float32)
        return LbfgsState(
            s=zeros,
            y=zeros,
            rho=jnp.zeros((m,), jnp.float32),
            count=jnp.int32(0),
            head=jnp.int32(0),
            h_diag=jnp.float32(1.0),
            prev_grad=jnp.zeros(pixels.shape, jnp.float32),
            prev_step=jnp.zeros(pixels.shape, jnp.float32),
            iteration=jnp.int32(0),
        )

    def direction(grad, st):
        def newest_first(i, carry):
            q, alphas = carry
            idx = (st.head - 1 - i) % m
            alpha = jnp.where(i < st.count, st.rho[idx] * _vdot(st.s[idx], q), 0.0)
            return q - alpha * st.y[idx], alphas.at[idx].set(alpha)

        q, alphas = jax.lax.fori_loop(0, m, newest_first, (-grad, jnp.zeros((m,), jnp.float32)))

        def oldest_first(i, r):
            idx = (st.head - st.count + i) % m
            beta = st.rho[idx] * _vdot(st.y[idx], r)
            return r + jnp.where(i < st.count, alphas[idx] - beta, 0.0) * st.s[idx]

        return jax.lax.fori_loop(0, m, oldest_first, q * st.h_diag)

    def update(grad, st, pixels, learning_rate):
        grad = grad.astype(jnp.float32)
        first = st.iteration == 0
        y = grad - st.prev_grad
        ys = _vdot(y, st.prev_step)
        keep = jnp.logical_and(jnp.logical_not(first), ys > 1e-10)
        slot = st.head
        st = st._replace(
            # Only one slot changes: select within it rather than over the whole buffer.
            s=st.s.at[slot].set(jnp.where(keep, st.prev_step, st.s[slot])),
            y=st.y.at[slot].set(jnp.where(keep, y, st.y[slot])),
            rho=st.rho.at[slot].set(jnp.where(keep, 1.0 / jnp.where(keep, ys, 1.0), st.rho[slot])),
            count=jnp.where(keep, jnp.minimum(st.count + 1, m), st.count),
            head=jnp.where(keep, (st.head + 1) % m, st.head),
            h_diag=jnp.where(keep, ys / jnp.maximum(_vdot(y, y), 1e-30), st.h_diag),
        )
        d = direction(grad, st)
        first_scale = jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.sum(jnp.abs(grad)), 1e-30))
        t = jnp.where(first, first_scale, 1.0) * learning_rate
        step = t * d
        st = st._replace(prev_grad=grad, prev_step=step, iteration=st.iteration + 1)
        return pixels + step.astype(pixels.dtype), st

    return Optimizer(init, update)


OPTIMIZERS = ("adam", "lbfgs")


def make(name: str, lbfgs_history: int = 20) -> Optimizer:
    """The optimiser called ``name`` (``"adam"`` or ``"lbfgs"``)."""
    if name == "adam":
        return adam()
    if name == "lbfgs":
        return lbfgs(lbfgs_history)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
