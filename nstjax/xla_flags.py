"""XLA settings nstjax applies before JAX starts its backends: :func:`apply`, called by
``import nstjax``.

XLA reads ``XLA_FLAGS`` once, when the first backend starts, so the flags must be in the
environment before any JAX computation. nstjax adds them when it is imported, deliberately: a
library user who writes ``import nstjax`` and calls :func:`nstjax.stylize` gets the measured speed
without knowing about the flags, and one who does not want them sets ``NSTJAX_XLA_DEFAULTS=0``
(or sets the flags to other values: a flag already in ``XLA_FLAGS`` is never changed). Importing
nstjax after something has already started a JAX backend leaves them without effect; calling
:func:`apply` before the first JAX computation does the same as the import.

Both flags concern only the CPU backend (GPU and TPU compilers ignore them):

- ``--xla_cpu_experimental_ynn_fusion_type=individual_dot``: on XLA:CPU, convolutions through
  YNNPACK fusions were measured slower for this workload than XLA's own (docs/benchmarks.md,
  measured with ``scripts/cpu_experiments.py`` at commit 2a5880a), so YNNPACK is limited to dot
  products: convolutions are XLA's, matmuls keep YNNPACK's fast (AMX) bf16 path, which an empty
  value would also turn off (``scripts/xla_flags_probe.py`` at commit dd6b9d1).
- ``--xla_cpu_enable_concurrency_optimized_scheduler=false`` keeps XLA:CPU from scheduling
  independent operations side by side: on two cores, a Gram matmul running beside a convolution
  slows the convolution (oneDNN's or XLA's) more than it gains; measured 1.35x faster per 128 px
  step with oneDNN convolutions and 1.1x with XLA's on a 2-core Intel Xeon (docs/benchmarks.md).

No flag is added for a jaxlib older than 0.10 (which does not know them; XLA aborts on unknown
flags).
"""

import os

CPU_FLAGS = (
    "--xla_cpu_experimental_ynn_fusion_type=individual_dot",
    "--xla_cpu_enable_concurrency_optimized_scheduler=false",
)
OPT_OUT = "NSTJAX_XLA_DEFAULTS"
"""Set to ``0`` to keep nstjax from touching ``XLA_FLAGS``."""


def apply() -> list[str]:
    """Appends to ``XLA_FLAGS`` each of :data:`CPU_FLAGS` that it does not already name.

    Does nothing when ``$NSTJAX_XLA_DEFAULTS`` is ``0`` or jaxlib is older than 0.10. Has an effect
    only before the first JAX computation of the process (XLA reads the flags once).

    Returns:
        The flags added (empty when none was).
    """
    if os.environ.get(OPT_OUT, "1") == "0":
        return []
    try:
        from jaxlib.version import __version__ as jaxlib_version
    except ImportError:
        return []
    if tuple(int(p) for p in jaxlib_version.split(".")[:2]) < (0, 10):
        return []
    flags = os.environ.get("XLA_FLAGS", "")
    added = [flag for flag in CPU_FLAGS if flag.split("=")[0] not in flags]
    if added:
        os.environ["XLA_FLAGS"] = " ".join([flags, *added]).strip()
    return added
