"""When a run stops: a step that is not finite, or a convergence tolerance met.

The tests behind :class:`nstjax.engine.State`'s ``failed_at`` and ``converged_at``, for ONE run
(the engine vmaps them over the batch).
"""

import jax
import jax.numpy as jnp

from nstjax.linesearch import Evaluation


def all_finite(tree) -> jax.Array:
    """``[]`` bool: every floating-point leaf of ``tree`` is finite (integer leaves are skipped)."""
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def converged(
    here: Evaluation,
    last_loss: jax.Array,
    step: jax.Array,
    loss_tolerance: jax.Array | None = None,
    grad_tolerance: jax.Array | None = None,
) -> jax.Array:
    """``[]`` bool: the run has converged before ``step``.

    Args:
        here: the evaluation at the run's pixels before ``step``.
        last_loss: the loss before the previous step.
        step: the batch's step.
        loss_tolerance: the relative loss change ``|f_k - f_{k-1}| / |f_{k-1}|`` at which the
            run stops (from step 1); ``None`` or 0: no such test.
        grad_tolerance: the gradient's max-norm at which it stops (torch's ``tolerance_grad``);
            ``None`` or 0: no such test.
    """
    stop = jnp.bool_(False)
    if loss_tolerance is not None:
        change = jnp.abs(here.value - last_loss)
        small = change <= loss_tolerance * jnp.abs(last_loss)
        stop |= (loss_tolerance > 0) & (step > 0) & small
    if grad_tolerance is not None:
        small = jnp.max(jnp.abs(here.grad)) <= grad_tolerance
        stop |= (grad_tolerance > 0) & small
    return stop
