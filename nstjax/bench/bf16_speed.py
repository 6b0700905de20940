"""Whether this machine runs nstjax's convolutions faster in bfloat16 than in float32.

bfloat16 activations are 2.7x faster than float32 on a CPU whose oneDNN has native bf16 kernels
(Intel with AMX), and about 3x slower on one without (an AMD EPYC: oneDNN has no fast bf16 kernel
there and the layers fall back to XLA's convolutions in bf16). On accelerators bf16 is the fast
format, so it is assumed faster and nothing is measured.

On a CPU a short probe decides: four VGG-sized layers (:data:`LAYERS`), their forward
convolutions and input gradients with the kernels a step uses (``convolution``), timed in each
dtype alternately (a few seconds with compilation on a 2-core CPU).
The result is cached in ``cache_dir()/bf16_speed.json`` keyed by backend, CPU model, jax and
jaxlib versions, convolution and ``XLA_FLAGS`` (:func:`machine_key`), so each machine measures
once. When a user asks for bfloat16 where it is not faster, :func:`note` says so in one line; the
run still uses bfloat16, as asked.
"""

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import jax
import jax.numpy as jnp
import jaxlib

from nstjax import atomic, kernels
from nstjax.bench.report import cpu_model
from nstjax.cache import cache_dir

LAYERS = ((64, 64), (32, 128), (16, 256), (8, 512))
"""(side, channels) of the probe's layers: VGG's four widths at equal FLOPs per layer, as in a step."""
REPEATS = 7
FASTER_BY = 1.1
"""bf16 counts as faster when float32 takes at least this many times as long."""
CACHE_NAME = "bf16_speed.json"


def machine_key(convolution: str) -> str:
    """What the measurement depends on: backend, CPU model, jax/jaxlib, convolution, XLA_FLAGS."""
    return " | ".join(
        [
            jax.default_backend(),
            cpu_model(),
            f"jax {jax.__version__}",
            f"jaxlib {jaxlib.__version__}",
            convolution,
            f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}",
        ]
    )


def _probe(dtype: str, convolution: str):
    """A jitted call of the probe's layers (forward and input gradient) and its arguments."""
    args = []
    for i, (side, channels) in enumerate(LAYERS):
        key_x, key_k = jax.random.split(jax.random.key(i))
        x = jax.random.uniform(key_x, (1, side, side, channels)).astype(dtype)
        kernel = jax.random.normal(key_k, (3, 3, channels, channels)) * (2 / 9 / channels) ** 0.5
        prepared = kernels.prepare({"layer": kernel}, convolution).get("layer", {})
        args.append((x, kernel, jnp.zeros((channels,)), prepared))

    def loss(xs, weights):
        return sum(
            kernels.conv3x3_relu(x, *w, convolution).astype(jnp.float32).sum()
            for x, w in zip(xs, weights)
        )

    step = jax.jit(jax.grad(loss))
    return step, ([a[0] for a in args], [a[1:] for a in args])


def probe_seconds(convolution: str, repeats: int = REPEATS) -> dict[str, float]:
    """Best wall time of the probe's layers in float32 and in bfloat16, timed alternately.

    Args:
        convolution: one of :data:`nstjax.kernels.CONVOLUTIONS`.
        repeats: rounds of one timed call per dtype after a warm-up; the fastest of each is kept.

    Returns:
        ``{"float32_s": ..., "bfloat16_s": ...}``.
    """
    probes = {dtype: _probe(dtype, convolution) for dtype in ("float32", "bfloat16")}
    for step, args in probes.values():
        jax.block_until_ready(step(*args))
    best = dict.fromkeys(probes, float("inf"))
    for _ in range(repeats):
        for dtype, (step, args) in probes.items():
            start = time.perf_counter()
            jax.block_until_ready(step(*args))
            best[dtype] = min(best[dtype], time.perf_counter() - start)
    return {f"{dtype}_s": seconds for dtype, seconds in best.items()}


def _read(path: Path) -> dict[str, Any]:
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cached if isinstance(cached, dict) else {}


def measured(convolution: str, path: Path | None = None) -> dict[str, float] | None:
    """``{"float32_s": ..., "bfloat16_s": ...}`` of the probe on this machine (None off CPU).

    Measured once per :func:`machine_key` and cached in ``path`` (default
    ``cache_dir()/bf16_speed.json``).
    """
    if jax.default_backend() != "cpu":
        return None
    path = path or cache_dir() / CACHE_NAME
    cached, key = _read(path), machine_key(convolution)
    entry = cached.get(key)
    if isinstance(entry, dict) and all(
        isinstance(entry.get(k), (int, float)) and entry[k] > 0 for k in ("float32_s", "bfloat16_s")
    ):
        return entry
    entry = probe_seconds(convolution)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, json.dumps({**cached, key: entry}, indent=1) + "\n")
    except OSError:
        pass  # an unwritable cache only means measuring again next time
    return entry


def bf16_is_faster(convolution: str, path: Path | None = None) -> bool:
    """Whether bfloat16 runs at least :data:`FASTER_BY` times faster here (True on accelerators)."""
    times = measured(convolution, path)
    return times is None or times["float32_s"] >= FASTER_BY * times["bfloat16_s"]


def note(dtype: str, convolution: str, path: Path | None = None) -> str | None:
    """One line for a user who asked for ``dtype`` where bfloat16 is not faster (else None).

    Args:
        dtype: the activation dtype asked for (only ``"bfloat16"`` is ever noted).
        convolution: the convolution the run uses (``Options.convolution``).
        path: the cache file (default ``cache_dir()/bf16_speed.json``).
    """
    if dtype != "bfloat16" or bf16_is_faster(convolution, path):
        return None
    times = measured(convolution, path)
    ratio = times["bfloat16_s"] / times["float32_s"]
    speed = (
        f"{ratio:.1f}x slower than in float32"
        if ratio >= FASTER_BY
        else f"no faster than in float32 ({ratio:.2f}x the time)"
    )
    return (
        f"nstjax: note: VGG's convolutions ({convolution} kernels) run {speed} on this machine "
        "(measured once, cached); running in bfloat16 as asked"
    )


def note_if_slower(dtype: str, convolution: str, stream: TextIO | None = None) -> None:
    """Prints :func:`note` (to stderr by default) when there is one."""
    line = note(dtype, convolution)
    if line:
        print(line, file=stream or sys.stderr, flush=True)
