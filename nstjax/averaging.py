"""Iterate averaging: the output is an exponential moving average of an optimiser's iterates.

crowsonkb/style-transfer-pytorch returns, at each scale, the bias-corrected exponential moving
average of its Adam iterates (``EMA`` in its ``style_transfer.py``, as Kingma & Ba's moments):
after ``t`` updates with iterates ``x_0 ... x_t`` (``x_0`` the starting image),

    ``m_t = d m_{t-1} + (1 - d) x_t``, ``m_{-1} = 0``; the average is ``m_t / (1 - d^(t+1))``,

a weighted mean of the iterates, the newest weighted most. The optimiser itself is unchanged: its
gradient is taken at its iterate, only the image a run *returns* (and snapshots) is the average.
:func:`averaged` wraps an :class:`nstjax.optim.Optimizer` (one image, vmapped over runs like it),
so each run keeps its own average.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from nstjax.optim import Optimizer


class AveragedState(NamedTuple):
    """The wrapped optimiser's state, the moving sum and ``d^(t+1)`` (for the bias correction)."""

    inner: Any
    moving: jax.Array  # m_t, the pixels' shape
    decay_power: jax.Array  # [] d^(t+1)


def averaged(inner: Optimizer, decay: float) -> Optimizer:
    """``inner`` whose state also keeps the moving average of its iterates (decay ``decay``).

    Args:
        inner: an optimiser of one image (Adam or fixed-step L-BFGS).
        decay: the average's decay ``d`` in ``[0, 1)``; 0 keeps only the last iterate, so
            ``inner`` itself is returned.

    Returns:
        An :class:`~nstjax.optim.Optimizer` with the same iterates as ``inner``; read the average
        with :func:`average`.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"decay must be in [0, 1), got {decay!r}")
    if decay == 0.0:
        return inner

    def init(pixels, like):
        dtype = jnp.promote_types(pixels.dtype, jnp.float32)
        start = pixels.astype(dtype)
        inner_state = inner.init(pixels, like)
        return AveragedState(inner_state, (1.0 - decay) * start, jnp.asarray(decay, dtype))

    def evaluate(value_fn, state, pixels, first):
        here, inner_state = inner.evaluate(value_fn, state.inner, pixels, first)
        return here, state._replace(inner=inner_state)

    def update(grad, state, pixels, **extra):
        updates, inner_state = inner.update(grad, state.inner, pixels, **extra)
        new_pixels = optax.apply_updates(pixels, updates)  # as the engine applies them
        moving = decay * state.moving + (1.0 - decay) * new_pixels.astype(state.moving.dtype)
        return updates, AveragedState(inner_state, moving, state.decay_power * decay)

    return Optimizer(init, evaluate, update, lambda state: inner.evaluations(state.inner))


def average(state: AveragedState) -> jax.Array:
    """The bias-corrected average ``m_t / (1 - d^(t+1))`` of :func:`averaged`'s state (any
    leading run axis)."""
    correction = 1.0 - state.decay_power
    return state.moving / correction.reshape(correction.shape + (1,) * 3)
