"""The kernels behind VGG's convolutions and the Gram products, behind one narrow interface.

A *convolution* names how a step computes VGG's 3x3 convolutions and their image gradient:

- ``"xla"``: XLA's convolutions and plain autodiff (the choice on accelerators);
- ``"flipped"``: XLA's convolutions, the input gradient with kernels flipped once beforehand;
- ``"onednn"``: oneDNN's convolutions and sgemm inside the compiled step (x86-64 CPUs where the
  small native handler builds; :mod:`nstjax.kernels.onednn`).

The choice is made once per call or sweep (:func:`choose`), carried in the static program
(``engine.Program.convolution``), and the kernels are rearranged for it once (:func:`prepare`).
Nothing outside this package needs to know which library runs a kernel.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from nstjax.kernels import conv, gram, onednn

CONVOLUTIONS: tuple[str, ...] = conv.IMPLS


def available(convolution: str) -> bool:
    """Whether ``convolution`` can run on this machine's default backend."""
    if convolution == "onednn":
        return jax.default_backend() == "cpu" and onednn.available()
    return convolution in CONVOLUTIONS


def unavailable_reason(convolution: str) -> str | None:
    """Why :func:`available` is False for ``convolution`` (``None`` when it is available)."""
    if available(convolution):
        return None
    if convolution not in CONVOLUTIONS:
        return f"unknown convolution {convolution!r} (one of {', '.join(CONVOLUTIONS)})"
    if jax.default_backend() != "cpu":
        return f"oneDNN runs on CPUs only (backend {jax.default_backend()})"
    return onednn.unavailable_reason()


def choose(n_devices: int = 1) -> str:
    """The fastest convolution measured for this backend (docs/benchmarks.md).

    Args:
        n_devices: devices the run axis is sharded over; oneDNN's custom call has no sharding
            rule, so a CPU mesh of several devices takes ``"flipped"``.

    Returns:
        ``"onednn"`` on CPU where it builds, ``"flipped"`` on other CPUs, ``"xla"`` elsewhere.
    """
    if jax.default_backend() != "cpu":
        return "xla"
    return "onednn" if n_devices == 1 and onednn.available() else "flipped"


def prepare(kernels: dict[str, jax.Array], convolution: str) -> dict[str, dict[str, jax.Array]]:
    """Each layer's kernel rearranged once for ``convolution`` (empty for ``"xla"``).

    Args:
        kernels: layer name -> HWIO kernel ``[3, 3, I, O]``.
        convolution: one of :data:`CONVOLUTIONS`.

    Returns:
        Layer name -> the arrays :func:`conv3x3_relu` takes as ``prepared``.
    """
    if convolution not in CONVOLUTIONS:
        raise ValueError(f"convolution must be one of {CONVOLUTIONS}, got {convolution!r}")
    if convolution == "xla":
        return {}
    return {name: conv.prepare(kernel, convolution) for name, kernel in kernels.items()}


def conv3x3_relu(x, kernel, bias, prepared, convolution: str) -> jax.Array:
    """``relu(conv3x3(x, kernel) + bias)`` with ``convolution``'s kernels (NHWC, HWIO, SAME).

    Args:
        x: ``[N, H, W, I]``.
        kernel: ``[3, 3, I, O]``.
        bias: ``[O]``.
        prepared: this layer's entry of :func:`prepare` (ignored for ``"xla"``).
        convolution: one of :data:`CONVOLUTIONS`.
    """
    if convolution == "xla":
        return conv.conv3x3_relu(x, kernel, bias, None)
    if not prepared:
        raise ValueError(
            f"convolution {convolution!r} needs kernels prepared for it (nstjax.vgg.prepare)"
        )
    return conv.conv3x3_relu(x, kernel, bias, prepared)


def gram_product(convolution: str) -> Callable[[jax.Array], jax.Array]:
    """The ``f -> f^T f`` (float32, ``f`` ``[P, C]``) that goes with ``convolution``: oneDNN's
    sgemm beside oneDNN's convolutions, XLA's dot otherwise."""
    use_onednn = convolution == "onednn"
    return lambda f: gram.gram_product(f.astype(jnp.float32), use_onednn)


__all__ = [
    "CONVOLUTIONS",
    "available",
    "choose",
    "conv3x3_relu",
    "gram_product",
    "prepare",
    "unavailable_reason",
]
