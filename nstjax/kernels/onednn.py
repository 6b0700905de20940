"""oneDNN's convolutions inside jitted XLA:CPU programs, through an XLA FFI custom call.

XLA:CPU's own 3x3 convolutions run at about two thirds of oneDNN's speed on VGG's layers, and
the convolutions are nearly all of a style-transfer step (docs/benchmarks.md). The C++ handler in
``native/onednn_conv.cc`` runs oneDNN's forward convolution (bias and ReLU fused) on NHWC float32
activations with the weights already packed in oneDNN's blocked layout, so the per-step work is
the convolution alone. nstjax packs the weights once per optimisation (:func:`pack`, called by
:func:`nstjax.vgg.prepare`), never per step.

The handler is compiled on first use with the system's C++ compiler against the oneDNN wheels
(``onednn-cpu-gomp``, ``onednn-devel-cpu-gomp``, Linux x86-64 dependencies of nstjax) and jaxlib's
FFI headers, and cached in ``$XDG_CACHE_HOME/nstjax/native`` under a hash of everything that went
into it. When anything is missing (another platform, no compiler) :func:`available` is False, says
why in :func:`unavailable_reason`, and nstjax uses XLA's convolutions. ``NSTJAX_ONEDNN=0`` turns
it off.
"""

import ctypes
import functools
import hashlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.cache import cache_dir

SOURCE = Path(__file__).with_name("native") / "onednn_conv.cc"
TARGET = "nstjax_onednn_conv3x3"
BF16_TARGET = "nstjax_onednn_conv3x3_bf16"
MATMUL_TARGET = "nstjax_onednn_matmul"
BLOCKS = (8, 16, 32, 64)
BF16_BLOCKS = (16, 32, 64)
ENV_SWITCH = "NSTJAX_ONEDNN"


class OneDNNUnavailable(RuntimeError):
    """oneDNN's convolutions cannot be used here (the message says why)."""


def _dist_file(dist: str, suffix: str) -> Path:
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError as e:
        raise OneDNNUnavailable(f"the {dist} package is not installed") from e
    for f in files:
        if str(f).replace("\\", "/").endswith(suffix):
            return Path(importlib.metadata.distribution(dist).locate_file(f)).resolve()
    raise OneDNNUnavailable(f"{dist} has no {suffix}")


def _build_inputs() -> tuple[Path, Path, str]:
    """oneDNN's include folder, its shared library, and the C++ compiler."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise OneDNNUnavailable(f"no oneDNN wheel for {platform.system()} {platform.machine()}")
    header = _dist_file("onednn-devel-cpu-gomp", "include/oneapi/dnnl/dnnl.hpp")
    library = _dist_file("onednn-cpu-gomp", "/libdnnl.so.3")
    compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        raise OneDNNUnavailable("no C++ compiler (g++) to build the oneDNN handler")
    return header.parents[2], library, compiler


def _compile(out: Path, include: Path, library: Path, compiler: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.stem, suffix=".tmp.so")
    os.close(fd)
    command = [
        compiler, "-O2", "-std=c++17", "-shared", "-fPIC", "-w", str(SOURCE),
        "-I", str(include), "-I", jax.ffi.include_dir(),
        str(library), f"-Wl,-rpath,{library.parent}", "-o", tmp,
    ]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise OneDNNUnavailable(f"compiling {SOURCE.name} failed: {last}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _build_and_load() -> ctypes.CDLL:
    if os.environ.get(ENV_SWITCH, "1") == "0":
        raise OneDNNUnavailable(f"turned off by {ENV_SWITCH}=0")
    include, library, compiler = _build_inputs()
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), str(library).encode(), compiler.encode(),
                 jax.ffi.include_dir().encode(), importlib.metadata.version("jaxlib").encode()):  # fmt: skip
        digest.update(part)
    out = cache_dir() / "native" / f"onednn_conv-{digest.hexdigest()[:16]}.so"
    if not out.is_file():
        try:
            _compile(out, include, library, compiler)
        except OSError as e:  # an unwritable cache, a compiler that cannot be started
            raise OneDNNUnavailable(f"building {out.name} failed: {e}") from e
    try:
        lib = ctypes.CDLL(str(out))
    except OSError as e:
        raise OneDNNUnavailable(f"loading {out} failed: {e}") from e
    lib.nstjax_onednn_preferred_block.restype = ctypes.c_int64
    lib.nstjax_onednn_preferred_block.argtypes = [ctypes.c_int64] * 6
    lib.nstjax_onednn_version.restype = ctypes.c_int64
    jax.ffi.register_ffi_target(
        TARGET, jax.ffi.pycapsule(lib.nstjax_onednn_conv3x3), platform="cpu"
    )
    jax.ffi.register_ffi_target(
        BF16_TARGET, jax.ffi.pycapsule(lib.nstjax_onednn_conv3x3_bf16), platform="cpu"
    )
    jax.ffi.register_ffi_target(
        MATMUL_TARGET, jax.ffi.pycapsule(lib.nstjax_onednn_matmul), platform="cpu"
    )
    return lib


@functools.cache
def _loaded() -> tuple[ctypes.CDLL | None, str | None]:
    try:
        return _build_and_load(), None
    except OneDNNUnavailable as e:
        return None, str(e)


def _library() -> ctypes.CDLL:
    lib, reason = _loaded()
    if lib is None:
        raise OneDNNUnavailable(reason)
    return lib


def unavailable_reason() -> str | None:
    """Why oneDNN's convolutions cannot be used here, or None when they can (decided once per
    process)."""
    return _loaded()[1]


def available() -> bool:
    """Whether the oneDNN handler is built, loaded and registered (building it if needed)."""
    return unavailable_reason() is None


def version() -> str:
    """oneDNN's version, e.g. ``"3.2.0"``."""
    v = _library().nstjax_onednn_version()
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"


@functools.cache
def block_for(in_channels: int, out_channels: int) -> int:
    """The output-channel block of the float32 packed layout oneDNN's fastest kernel takes for
    these channel counts on this CPU (asked of oneDNN with a representative 32x32 image). Any
    block gives correct results; this one avoids oneDNN falling back to a slower kernel."""
    block = _library().nstjax_onednn_preferred_block(1, 32, 32, in_channels, out_channels, 0)
    return int(block) if block in BLOCKS else 16


@functools.cache
def bf16_block_for(in_channels: int, out_channels: int) -> int | None:
    """Like :func:`block_for` for bfloat16 (layout ``AcdB16b<B>a2b``, the AMX kernels' layout);
    None when oneDNN would pick another kernel here (no native bf16, or an odd shape such as 3
    input channels): nstjax then leaves that layer to XLA in bfloat16."""
    block = _library().nstjax_onednn_preferred_block(1, 32, 32, in_channels, out_channels, 1)
    return int(block) if block in BF16_BLOCKS else None


def pack(kernel: jax.Array, dtype=jnp.float32) -> jax.Array:
    """An HWIO ``[3, 3, I, O]`` kernel in oneDNN's blocked layout for ``dtype``.

    float32, ``Acdb<B>a``: ``[ceil(O/B), 3, 3, I, B]``. bfloat16, ``AcdB16b<B>a2b``:
    ``[ceil(O/B), 3, 3, ceil(I/32), 16, B, 2]`` with input channel ``i`` at ``(i // 32,
    i % 32 // 2, ., i % 2)``. Channels are zero-padded to whole blocks.
    """
    kh, kw, cin, cout = kernel.shape
    if (kh, kw) != (3, 3):
        raise ValueError(f"expected a 3x3 kernel, got {kernel.shape}")
    bf16 = jnp.dtype(dtype) == jnp.bfloat16
    block = bf16_block_for(cin, cout) if bf16 else block_for(cin, cout)
    if block is None:
        raise ValueError(f"oneDNN has no bfloat16 kernel for {cin} -> {cout} channels here")
    padded = -(-cout // block) * block
    padded_in = -(-cin // 32) * 32 if bf16 else cin
    k = jnp.asarray(kernel, jnp.float32)
    k = jnp.pad(k, ((0, 0), (0, 0), (0, padded_in - cin), (0, padded - cout)))
    if not bf16:
        return k.reshape(3, 3, cin, padded // block, block).transpose(3, 0, 1, 2, 4)
    k = k.reshape(3, 3, padded_in // 32, 16, 2, padded // block, block)
    return k.transpose(5, 0, 1, 2, 3, 6, 4).astype(jnp.bfloat16)


def conv3x3(x: jax.Array, packed: jax.Array, bias: jax.Array, *, relu: bool) -> jax.Array:
    """``relu(conv(x, kernel) + bias)`` (or without the ReLU), 3x3, stride 1, SAME, in float32
    or bfloat16 (``packed``'s dtype; bfloat16 accumulates in float32 and rounds the output).

    Args:
        x: ``[..., H, W, I]`` (leading axes are the batch); cast to ``packed``'s dtype.
        packed: the kernel from :func:`pack`.
        bias: ``[O]`` (float32).
        relu: fuse a ReLU.

    Not differentiable by itself: :mod:`nstjax.conv` gives it a VJP.
    """
    _library()
    cin, cout = x.shape[-1], bias.shape[-1]
    bf16 = packed.dtype == jnp.bfloat16
    if bf16:
        block = packed.shape[-2]
        fits = packed.shape[-6:] == (3, 3, -(-cin // 32), 16, block, 2) and block in BF16_BLOCKS
    else:
        block = packed.shape[-1]
        fits = packed.shape[-4:] == (3, 3, cin, block) and block in BLOCKS
    if not fits:
        raise ValueError(f"packed kernel {packed.shape} does not fit {cin} -> {cout} channels")
    dtype = packed.dtype
    call = jax.ffi.ffi_call(
        BF16_TARGET if bf16 else TARGET,
        jax.ShapeDtypeStruct(x.shape[:-1] + (cout,), dtype),
        vmap_method="expand_dims",
    )
    return call(
        x.astype(dtype),
        packed,
        bias.astype(jnp.float32),
        block=np.int64(block),
        relu=np.int64(relu),
    )


def matmul(
    a: jax.Array, b: jax.Array, *, transpose_a: bool = False, transpose_b: bool = False
) -> jax.Array:
    """``op(a) @ op(b)`` for float32 matrices ``[M, K] x [K, N]`` (``op`` transposes the last two
    axes when asked) through oneDNN's sgemm. Not differentiable by itself (see
    :mod:`nstjax.gram`); under ``jax.vmap`` the batch runs as a loop of sgemms."""
    _library()
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"matmul takes matrices, got {a.shape} and {b.shape}")
    m, k = a.shape[::-1] if transpose_a else a.shape
    k2, n = b.shape[::-1] if transpose_b else b.shape
    if k != k2:
        raise ValueError(f"matmul: inner dimensions differ ({a.shape}, {b.shape})")
    call = jax.ffi.ffi_call(
        MATMUL_TARGET, jax.ShapeDtypeStruct((m, n), jnp.float32), vmap_method="expand_dims"
    )
    return call(
        a.astype(jnp.float32),
        b.astype(jnp.float32),
        transpose_a=np.int64(transpose_a),
        transpose_b=np.int64(transpose_b),
    )
