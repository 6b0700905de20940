"""XLA settings nstjax applies before JAX starts its backends (import time, environment only).

On XLA:CPU, convolutions through YNNPACK fusions were measured slower for this workload than
XLA's own (scripts/cpu_experiments.py, docs/benchmarks.md), so nstjax limits YNNPACK to dot
products with ``--xla_cpu_experimental_ynn_fusion_type=individual_dot``: convolutions are XLA's,
matmuls keep YNNPACK's fast (AMX) bf16 path, which an empty value would also turn off
(scripts/xla_flags_probe.py). ``--xla_cpu_enable_concurrency_optimized_scheduler=false`` keeps
XLA:CPU from scheduling independent operations side by side: on two cores, a Gram matmul running
beside a convolution slows the convolution (oneDNN's or XLA's) more than it gains; measured
1.35x faster per 128 px step with oneDNN convolutions and 1.1x with XLA's (docs/benchmarks.md).
The flags only concern the CPU backend. A flag is
not added when ``XLA_FLAGS`` already mentions it, when ``NSTJAX_XLA_DEFAULTS=0``, or for a jaxlib
older than 0.10 (which does not know it; XLA aborts on unknown flags).
"""

import os

CPU_FLAGS = (
    "--xla_cpu_experimental_ynn_fusion_type=individual_dot",
    "--xla_cpu_enable_concurrency_optimized_scheduler=false",
)


def apply_defaults() -> None:
    """Appends :data:`CPU_FLAGS` to ``XLA_FLAGS`` unless the user opted out or set them."""
    if os.environ.get("NSTJAX_XLA_DEFAULTS", "1") == "0":
        return
    try:
        from jaxlib.version import __version__ as jaxlib_version
    except ImportError:
        return
    if tuple(int(p) for p in jaxlib_version.split(".")[:2]) < (0, 10):
        return
    flags = os.environ.get("XLA_FLAGS", "")
    for flag in CPU_FLAGS:
        if flag.split("=")[0] not in flags:
            flags = f"{flags} {flag}".strip()
    os.environ["XLA_FLAGS"] = flags
