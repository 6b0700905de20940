"""Memory figures: the device's high-water mark, XLA's compiled estimate, the largest image that fits.

``device.memory_stats()["peak_bytes_in_use"]`` is what the device allocator saw (GPUs and TPUs;
XLA:CPU has no memory stats, so it is reported as ``None``, "n/a" in tables). It is a process-wide
high-water mark that never goes down, so a benchmark that wants it per configuration runs the
configurations from small to large. ``compiled.memory_analysis()`` is XLA's own account of one
compiled step's buffers (arguments, outputs, temporaries), available on every backend.
"""

from collections.abc import Callable, Iterable
from typing import Any

import jax

OOM_MARKERS = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "OOM")


def peak_bytes_in_use(device: jax.Device | None = None) -> int | None:
    """The device allocator's peak bytes in use so far, or None where the backend keeps none."""
    device = device or jax.devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:  # backends without the API raise
        return None
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return int(stats["peak_bytes_in_use"])


def compiled_bytes(compiled: Any) -> int | None:
    """Bytes one call of a compiled program holds: arguments + outputs + temporaries - aliased.

    Donated arguments aliased to outputs are counted once. None when XLA gives no analysis.
    """
    try:
        stats = compiled.memory_analysis()
    except Exception:
        return None
    if stats is None:
        return None
    return int(
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )


def is_oom(error: BaseException) -> bool:
    """Whether an exception from compiling or running a program is an out-of-memory error."""
    text = f"{type(error).__name__}: {error}"
    return any(marker in text for marker in OOM_MARKERS)


def largest_fitting(
    try_size: Callable[[int], Any], sizes: Iterable[int], platform: str
) -> tuple[int | None, dict[int, str]]:
    """The largest of ``sizes`` (tried in increasing order) for which ``try_size`` succeeds.

    Stops at the first size that runs out of memory. On CPU nothing is tried: host memory is
    shared with everything else on the machine and exhausting it would be a test of the
    machine's swap, so the answer is None ("n/a").

    Args:
        try_size: compiles and runs one step at a size; raises on out-of-memory.
        sizes: candidate sizes.
        platform: ``jax.devices()[0].platform``.

    Returns:
        ``(largest size that ran or None, {size: "ok" | "oom" | "error: ..."})``.
    """
    if platform == "cpu":
        return None, {}
    largest, outcome = None, {}
    for size in sorted(sizes):
        try:
            try_size(size)
        except Exception as e:  # an OOM is an answer, not a failure of the benchmark
            if is_oom(e):
                outcome[size] = "oom"
                break
            outcome[size] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            break
        outcome[size] = "ok"
        largest = size
    return largest, outcome
