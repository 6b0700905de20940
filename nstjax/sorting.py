"""Sorting rows of float32 arrays through single-operand integer sorts (XLA:CPU's fast path).

XLA:CPU sorts one integer or float operand with ``std::sort`` and a built-in ``<`` only when the
comparator is a bare comparison of its two parameters. JAX's float comparator is not (it maps
``-0.0`` to ``0.0`` and every NaN to one NaN first), and a sort that carries indices has two
operands: both fall back to calling the compiled comparator for every comparison, about 6x slower
on a ``[64, 65536]`` array (docs/benchmarks.md, style-loss section). Here floats become ``uint32``
keys with the same order (an order-preserving bijection, after the same ``-0.0``/NaN
canonicalisation), and a stable argsort is an LSD radix sort whose passes are single-operand sorts
of ``digit << b | position`` keys (``b`` bits hold a position below ``n``; ``32 - b`` bits are the
pass's digit of the value): two passes up to ``n = 2^16``, three up to ``2^21``.

The permutation equals :func:`jnp.argsort` (stable) exactly, ties included (denormals tie with
zero where XLA flushes them, as in ``jnp.sort``); sorted values equal :func:`jnp.sort`'s, zeros
returned as ``+0.0``. Everything works on the last axis; no gradients flow through (callers use
the permutation).
"""

import jax
import jax.numpy as jnp
from jax import lax

_SIGN = 0x80000000
_MAGNITUDE = 0x7FFFFFFF


def order_keys(x: jax.Array) -> jax.Array:
    """``uint32`` keys of float32 ``x`` whose unsigned order is JAX's sort order of ``x``."""
    x = x.astype(jnp.float32)
    x = jnp.where(x == 0, 0.0, x)  # -0.0 ties with 0.0, as in JAX's comparator
    x = jnp.where(jnp.isnan(x), jnp.nan, x)  # one NaN, sorted last
    bits = lax.bitcast_convert_type(x, jnp.int32)
    bits = jnp.where(bits < 0, bits ^ _MAGNITUDE, bits)  # negatives: larger magnitude first
    return lax.bitcast_convert_type(bits, jnp.uint32) ^ jnp.uint32(_SIGN)


def from_order_keys(keys: jax.Array) -> jax.Array:
    """The float32 values of :func:`order_keys` (its inverse on canonical values)."""
    bits = lax.bitcast_convert_type(keys ^ jnp.uint32(_SIGN), jnp.int32)
    bits = jnp.where(bits < 0, bits ^ _MAGNITUDE, bits)
    return lax.bitcast_convert_type(bits, jnp.float32)


def sort_rows(x: jax.Array) -> jax.Array:
    """``jnp.sort(x, axis=-1)`` of a float array, as float32, by one ``uint32`` sort."""
    keys = lax.sort(order_keys(x), dimension=x.ndim - 1, is_stable=False)
    return from_order_keys(keys)


def argsort_rows(x: jax.Array) -> jax.Array:
    """``jnp.argsort(x, axis=-1, stable=True)`` (int32) of a float array, by LSD radix passes.

    Args:
        x: float array; rows along the last axis, of length ``n < 2^31``.

    Returns:
        ``perm`` with ``x[..., perm[..., i]]`` the ``i``-th smallest of its row, ties in
        position order.
    """
    axis = x.ndim - 1
    n = x.shape[-1]
    bits = max(1, (n - 1).bit_length())  # of a position
    keys = order_keys(x)
    position = lax.broadcasted_iota(jnp.uint32, x.shape, axis)
    perm = None
    shift = 0
    while shift < 32:
        width = min(32 - bits, 32 - shift)
        current = keys if perm is None else jnp.take_along_axis(keys, perm, axis=axis)
        digit = (current >> shift) & jnp.uint32((1 << width) - 1)
        # unique keys, so an unstable sort orders ties of the digit by their current position
        order = lax.sort((digit << bits) | position, dimension=axis, is_stable=False)
        order = (order & jnp.uint32((1 << bits) - 1)).astype(jnp.int32)
        perm = order if perm is None else jnp.take_along_axis(perm, order, axis=axis)
        shift += width
    return perm


def unsort_rows(sorted_values: jax.Array, perm: jax.Array) -> jax.Array:
    """``out[..., perm[..., i]] = sorted_values[..., i]``: values given in sorted order put back
    at the positions they sort from (one scatter)."""
    rows = jnp.indices(perm.shape[:-1], sparse=True)
    index = tuple(r[..., None] for r in rows) + (perm,)
    return jnp.zeros_like(sorted_values).at[index].set(sorted_values, unique_indices=True)
