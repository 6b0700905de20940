"""Peak FLOP/s of the device for the precision a benchmark used: the denominators of MFU.

Two peaks, both reported (:mod:`nstjax.bench.mfu`):

- *nominal*: a table of datasheet figures for known accelerators (dense, no sparsity). CPUs have
  none that is useful (core counts, clocks, boost and vector units vary by machine and host).
- *measured*: on every device, a matrix-multiply probe in the same run (:func:`device_peak`): the
  best rate of a large jitted matmul in the same number format, which is what XLA's own kernels
  reach on the machine at hand.

Precisions (how ``nstjax bench`` names them) map to a peak as follows: ``fp32`` is fp32 without
tensor cores (``jax.default_matmul_precision("highest")``); ``default`` is the backend's default
for fp32 inputs (TF32 on NVIDIA GPUs from Ampere on, one bf16 pass on TPUs, fp32 on CPUs); ``bf16``
is bf16 activations.
"""

import dataclasses
import time
from collections.abc import Mapping

import jax
import jax.numpy as jnp

PRECISIONS = ("fp32", "default", "bf16")

TFLOPS: Mapping[str, Mapping[str, float]] = {
    # NVIDIA, dense datasheet figures. Order matters: the first key found in device_kind wins.
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2},
    "H100": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},  # SXM
    "H200": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},  # the H100's compute, more memory
    "A100": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
    # TPUs: bf16 peak per chip. fp32 at "highest" precision takes about 6 bf16 passes.
    "TPU v4": {"bf16": 275.0, "fp32": 275.0 / 6},
    "TPU v5 lite": {"bf16": 197.0, "fp32": 197.0 / 6},  # v5e
    "TPU v5e": {"bf16": 197.0, "fp32": 197.0 / 6},
    "TPU v5p": {"bf16": 459.0, "fp32": 459.0 / 6},
    "TPU v5": {"bf16": 459.0, "fp32": 459.0 / 6},  # v5p reports itself as "TPU v5"
    "TPU v6 lite": {"bf16": 918.0, "fp32": 918.0 / 6},  # v6e (Trillium)
}
"""TFLOP/s by device-kind substring and number format."""

MEASURED_TFLOPS: Mapping[str, Mapping[str, float]] = {
    "H100": {"bf16": 798.0},  # a bf16 matmul on the project's H100 SXM machines
    "H200": {"bf16": 798.0},
}
"""Peaks measured earlier on the project's machines (a reference for the docs; a benchmark run
measures its own with :func:`device_peak`)."""

ACCELERATOR_PROBE_SIZE = 8192
"""Smallest matrix size of the probe on accelerators (smaller products do not reach their peak)."""


@dataclasses.dataclass(frozen=True)
class Peak:
    """A peak rate and where it came from.

    Attributes:
        flops_per_s: FLOP/s.
        source: ``"datasheet"``, ``"measured"`` (on these machines, earlier) or ``"probe"``
            (a matmul timed in this run).
        number_format: the format the peak is for (``"fp32"``, ``"tf32"``, ``"bf16"``).
    """

    flops_per_s: float
    source: str
    number_format: str


def number_format(platform: str, precision: str) -> str:
    """The arithmetic a precision mode actually uses on a platform (``"fp32"``/``"tf32"``/``"bf16"``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16":
        return "bf16"
    if precision == "default":
        return {"gpu": "tf32", "cuda": "tf32", "tpu": "bf16"}.get(platform, "fp32")
    return "fp32"


def _entry(table: Mapping[str, Mapping[str, float]], device_kind: str):
    for key, entry in table.items():
        if key.lower() in device_kind.lower():
            return entry
    return None


def table_peak(device_kind: str, fmt: str, measured: bool = False) -> Peak | None:
    """The tabulated peak of a device kind (``jax.devices()[0].device_kind``) for a format."""
    entry = _entry(MEASURED_TFLOPS if measured else TFLOPS, device_kind)
    if entry is None or fmt not in entry:
        return None
    return Peak(entry[fmt] * 1e12, "measured" if measured else "datasheet", fmt)


def probe_matrix_size(platform: str, configured: int) -> int:
    """The probe's matrix size: ``configured`` on CPUs, at least :data:`ACCELERATOR_PROBE_SIZE`
    elsewhere."""
    return configured if platform == "cpu" else max(configured, ACCELERATOR_PROBE_SIZE)


def matmul_probe(
    dtype=jnp.float32,
    n: int = 1024,
    repeats: int = 5,
    device: jax.Device | None = None,
    precision: str = "highest",
) -> float:
    """Best FLOP/s of an ``n x n`` matmul in ``dtype``, jitted.

    Several products are chained in one call so that dispatch does not count.

    Args:
        dtype: input dtype (the accumulation is fp32).
        n: matrix size.
        repeats: timed calls; the fastest is kept (a peak, not a typical rate).
        device: where to run (default: the default device).
        precision: ``jnp.dot``'s precision: ``"highest"`` (fp32 without tensor cores) or
            ``"default"`` (TF32 for fp32 inputs on NVIDIA GPUs).
    """
    chain = 8
    device = device or jax.devices()[0]
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.device_put(jax.random.normal(key_a, (n, n), jnp.float32).astype(dtype), device)
    b = jax.device_put(jax.random.normal(key_b, (n, n), jnp.float32).astype(dtype) / n, device)

    @jax.jit
    def products(a, b):
        x = a
        for _ in range(chain):
            x = jnp.dot(x, b, precision=precision, preferred_element_type=jnp.float32).astype(dtype)
        return x

    jax.block_until_ready(products(a, b))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(products(a, b))
        best = min(best, time.perf_counter() - start)
    return chain * 2.0 * n**3 / best


PROBE_OF_FORMAT: Mapping[str, tuple] = {
    "fp32": (jnp.float32, "highest"),
    "tf32": (jnp.float32, "default"),
    "bf16": (jnp.bfloat16, "default"),  # as the step runs it (no precision context)
}
"""Number format -> (input dtype, ``jnp.dot`` precision) of the probe that measures its peak."""


def device_peak(
    device: jax.Device, precision: str, probes: dict | None = None, probe_size: int = 1024
) -> Peak:
    """The measured peak for ``precision`` on ``device``: a matmul probe in the same number format.

    Args:
        device: a JAX device (any platform).
        precision: one of :data:`PRECISIONS`.
        probes: a dict caching probe results across calls (by number format).
        probe_size: matrix size of the probe on CPUs (see :func:`probe_matrix_size`).
    """
    fmt = number_format(device.platform, precision)
    probes = {} if probes is None else probes
    if fmt not in probes:
        dtype, dot_precision = PROBE_OF_FORMAT[fmt]
        n = probe_matrix_size(device.platform, probe_size)
        probes[fmt] = matmul_probe(dtype, n, device=device, precision=dot_precision)
    return Peak(probes[fmt], "probe", fmt)


def nominal_peak(device: jax.Device, precision: str) -> Peak | None:
    """The datasheet peak for ``precision`` on ``device`` (None where the table has none: CPUs,
    unknown accelerators)."""
    if device.platform == "cpu":
        return None
    return table_peak(device.device_kind, number_format(device.platform, precision))
