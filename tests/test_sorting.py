"""Tests of nstjax.sorting against numpy's sorts (stable argsort, ties broken by position)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax import sorting

SPECIAL = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.2e-38, -1.2e-38, 3.4e38, -3.4e38]
)
"""Edge values (no denormals: XLA flushes them to zero, so ``jnp.sort`` ties them with 0)."""


def rows_with_ties(n, seed, rows=3):
    """Random float32 rows with exact repeats, zeros of both signs, infinities and NaNs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, n)).astype(np.float32)
    x[:, ::5] = 0.0
    x[:, 1::7] = -0.0
    x[:, 2::11] = 1.5
    x[:, 3 : 3 + len(SPECIAL)] = SPECIAL[: max(0, n - 3)]
    return x


def np_stable_argsort(x):
    # numpy sorts -0.0 equal to 0.0 and NaNs last, as JAX does
    return np.argsort(x, axis=-1, kind="stable")


# n = 1, 2, not a power of two, 2^16 (two radix passes), 2^16 + 1 (three)
@pytest.mark.parametrize("n", [1, 2, 37, 65536, 65537])
def test_argsort_and_sort_match_numpy(n):
    x = rows_with_ties(n, n)
    perm, values = jax.jit(lambda x: (sorting.argsort_rows(x), sorting.sort_rows(x)))(x)
    np.testing.assert_array_equal(np.asarray(perm), np_stable_argsort(x))
    expected = np.sort(x, axis=-1)
    np.testing.assert_array_equal(np.asarray(values), expected)  # NaN == NaN; -0.0 == 0.0
    assert perm.dtype == jnp.int32 and values.dtype == jnp.float32


def test_leading_axes_and_bfloat16():
    x = rows_with_ties(50, 3, rows=6).reshape(2, 3, 50)
    low = jnp.asarray(x, jnp.bfloat16)
    perm = jax.jit(sorting.argsort_rows)(low)
    np.testing.assert_array_equal(
        np.asarray(perm), np_stable_argsort(np.asarray(low.astype(jnp.float32)))
    )


def test_order_keys_round_trip_and_order():
    x = np.concatenate([SPECIAL, rows_with_ties(200, 4, rows=1)[0]]).astype(np.float32)
    keys = np.asarray(sorting.order_keys(x))
    back = np.asarray(sorting.from_order_keys(keys))
    canonical = np.where(x == 0, np.float32(0.0), x)
    np.testing.assert_array_equal(back, canonical)  # -0.0 becomes 0.0, NaNs stay NaN
    finite = ~np.isnan(x)
    a, b = x[finite][:, None], x[finite][None, :]
    ka, kb = keys[finite][:, None], keys[finite][None, :]
    np.testing.assert_array_equal(ka < kb, a < b)
    assert np.all(keys[np.isnan(x)] > keys[finite].max())


def test_unsort_rows_places_sorted_values_back():
    x = rows_with_ties(40, 5)
    perm = np_stable_argsort(x)
    sorted_x = np.take_along_axis(x, perm, axis=-1)
    back = jax.jit(sorting.unsort_rows)(jnp.asarray(sorted_x), jnp.asarray(perm, jnp.int32))
    np.testing.assert_array_equal(np.asarray(back), x)
