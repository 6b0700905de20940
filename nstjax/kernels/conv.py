"""VGG's layer: 3x3 convolution (stride 1, SAME) + bias + ReLU, and its fast image gradient.

Style transfer differentiates with respect to the image only, through frozen weights, so each
layer's backward pass is one convolution of the incoming gradient with the kernel flipped in
space and transposed in channels. Left to autodiff, XLA:CPU re-derives that flipped kernel inside
every step (13 M weights, about 15% of a 128 px step, docs/benchmarks.md). Here the kernels are
prepared once (:func:`prepare`) and the layer has a custom VJP that uses them:

- ``"xla"``: nothing prepared, plain autodiff (the choice off CPU);
- ``"flipped"``: XLA's convolutions, input gradient with the pre-flipped kernel;
- ``"onednn"``: oneDNN's convolutions (:mod:`nstjax.onednn`) for the forward pass and the input
  gradient, both with kernels pre-packed in oneDNN's layout; in float32, and in bfloat16 where the
  CPU has native bf16 kernels (AMX: 8x faster than float32 here, docs/benchmarks.md).

The VJP is complete: gradients for the kernel and bias are computed too (as plain XLA
convolutions and sums), so differentiating with respect to the weights stays correct; when only
the image gradient is used, XLA removes that dead code.
"""

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from nstjax.kernels import onednn

IMPLS = ("xla", "flipped", "onednn")
_DIMS = ("NHWC", "HWIO", "NHWC")


def flip(kernel: jax.Array) -> jax.Array:
    """The kernel of the input gradient: HWIO ``[3, 3, I, O]`` -> ``[3, 3, O, I]``, reversed in
    space."""
    return jnp.flip(kernel, (0, 1)).swapaxes(2, 3)


def prepare(kernel: jax.Array, impl: str) -> dict[str, jax.Array]:
    """The arrays :func:`conv3x3_relu` needs beside ``kernel`` for ``impl`` (see the module doc)."""
    if impl == "xla":
        return {}
    if impl == "flipped":
        return {"flipped": flip(kernel)}
    if impl == "onednn":
        prepared = {
            "onednn_forward": onednn.pack(kernel),
            "onednn_backward": onednn.pack(flip(kernel)),
        }
        cin, cout = kernel.shape[2:]
        if onednn.bf16_block_for(cin, cout) and onednn.bf16_block_for(cout, cin):
            prepared["onednn_forward_bf16"] = onednn.pack(kernel, jnp.bfloat16)
            prepared["onednn_backward_bf16"] = onednn.pack(flip(kernel), jnp.bfloat16)
        return prepared
    raise ValueError(f"convolution must be one of {IMPLS}, got {impl!r}")


def _xla_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DIMS)


def _onednn_key(x, direction):
    """The prepared entry for ``x``'s dtype, e.g. ``"onednn_forward_bf16"`` (one that is never
    prepared for dtypes the handler does not take)."""
    suffix = {"float32": "", "bfloat16": "_bf16"}.get(jnp.dtype(x.dtype).name, f"_{x.dtype}")
    return f"onednn_{direction}{suffix}"


def _forward(x, kernel, bias, prepared):
    if "onednn_forward" in prepared:
        bias32 = bias.astype(jnp.float32)
        return onednn.conv3x3(x, prepared[_onednn_key(x, "forward")], bias32, relu=True)
    return jax.nn.relu(_xla_conv(x, kernel) + bias)


@jax.custom_vjp
def _prepared_conv3x3_relu(x, kernel, bias, prepared):
    return _forward(x, kernel, bias, prepared)


def _fwd(x, kernel, bias, prepared):
    y = _forward(x, kernel, bias, prepared)
    return y, (x, y, kernel, prepared)


def _bwd(residuals, g):
    x, y, kernel, prepared = residuals
    g = jnp.where(y > 0, g, jnp.zeros_like(g))
    if "onednn_backward" in prepared:
        zero_bias = jnp.zeros((x.shape[-1],), jnp.float32)
        dx = onednn.conv3x3(g, prepared[_onednn_key(g, "backward")], zero_bias, relu=False)
    else:
        dx = _xla_conv(g, prepared["flipped"].astype(g.dtype))
    _, kernel_vjp = jax.vjp(lambda k: _xla_conv(x, k), kernel)
    (dkernel,) = kernel_vjp(g)
    dbias = g.reshape(-1, g.shape[-1]).sum(0).astype(kernel.dtype)
    dprepared = jax.tree.map(jnp.zeros_like, prepared)
    return dx.astype(x.dtype), dkernel.astype(kernel.dtype), dbias, dprepared


_prepared_conv3x3_relu.defvjp(_fwd, _bwd)


def conv3x3_relu(
    x: jax.Array, kernel: jax.Array, bias: jax.Array, prepared: dict[str, Any] | None = None
) -> jax.Array:
    """``relu(conv(x, kernel) + bias)`` for NHWC ``x`` and an HWIO 3x3 ``kernel``.

    Args:
        x: ``[N, H, W, I]`` (any float dtype; the kernel and bias are cast to it).
        kernel: ``[3, 3, I, O]``.
        bias: ``[O]``.
        prepared: from :func:`prepare`; empty or None for plain autodiff. oneDNN entries exist
            for float32 and, where this CPU has native bf16 kernels (AMX, AVX512-BF16), for
            bfloat16; other dtypes take plain autodiff.
    """
    kernel, bias = kernel.astype(x.dtype), bias.astype(x.dtype)
    if prepared and "onednn_forward" in prepared and _onednn_key(x, "forward") not in prepared:
        prepared = None  # no oneDNN kernel packed for this dtype: plain autodiff
    if not prepared:
        return jax.nn.relu(_xla_conv(x, kernel) + bias)
    return _prepared_conv3x3_relu(x, kernel, bias, prepared)
