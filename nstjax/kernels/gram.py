"""The Gram product ``F^T F`` of a ``[P, C]`` feature matrix, and its gradient, on oneDNN.

XLA:CPU runs these tall-skinny products (P = h w up to 65536, C = 64 ... 512) at 70-200 GFLOP/s;
oneDNN's sgemm at 200-300 (docs/benchmarks.md), and at 128 px they are a tenth of a step. With
``use_onednn`` the product and its VJP (``dF = F (dG + dG^T)``) are oneDNN calls; without it, a
plain einsum that XLA differentiates. :func:`nstjax.losses.gram` picks by the convolution the
parameters were prepared for (``vgg.prepare``), so a step uses oneDNN for both or for neither.
"""

import functools

import jax
import jax.numpy as jnp

from nstjax.kernels import onednn


def _einsum(f: jax.Array) -> jax.Array:
    return jnp.einsum("kc,kd->cd", f, f, preferred_element_type=jnp.float32)


@jax.custom_vjp
def _onednn_gram(f: jax.Array) -> jax.Array:
    return onednn.matmul(f, f, transpose_a=True)


def _fwd(f):
    return _onednn_gram(f), f


def _bwd(f, g):
    return (onednn.matmul(f, g + g.T),)


_onednn_gram.defvjp(_fwd, _bwd)


@functools.partial(jax.named_call, name="gram_product")
def gram_product(f: jax.Array, use_onednn: bool = False) -> jax.Array:
    """``f^T f`` in float32 for ``f`` ``[P, C]`` (float32)."""
    if use_onednn and f.dtype == jnp.float32:
        return _onednn_gram(f)
    return _einsum(f)
