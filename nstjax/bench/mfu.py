"""Model FLOPs utilisation against two peaks: the nominal one and the one measured here.

The *nominal* peak is a datasheet figure (:data:`nstjax.bench.peaks.TFLOPS`; none for CPUs). The
*measured* peak is the best rate of a large matmul in the same precision on the machine at hand
(:func:`nstjax.bench.peaks.device_peak`). A step can beat that probe (on CPUs oneDNN's
convolutions run faster than XLA's matmul), and then the probe is not the machine's peak: the
machine has just shown that it does at least what the step did. So the measured peak is
``max(probe, achieved)``, MFU against it never exceeds 100%, and such a case is flagged
(``peak_source == "step"``) instead of printing more than 100%.
"""

from typing import Any


def utilisation(
    achieved_flops_per_s: float | None,
    probe_flops_per_s: float | None,
    nominal_flops_per_s: float | None,
) -> dict[str, Any]:
    """The MFU fields of a benchmark record.

    Args:
        achieved_flops_per_s: the step's model FLOPs per second (None when unknown).
        probe_flops_per_s: the matmul probe's best rate in the same precision (None when unknown).
        nominal_flops_per_s: the datasheet peak (None where there is none, e.g. CPUs).

    Returns:
        ``achieved_flops_per_s``; ``probe_flops_per_s``; ``peak_flops_per_s`` (the measured peak,
        ``max(probe, achieved)``) and ``peak_source`` (``"probe"``, or ``"step"`` when the step
        beat the probe); ``mfu`` (achieved / measured peak, at most 1); ``nominal_peak_flops_per_s``
        and ``mfu_nominal`` (achieved / nominal peak). Figures that cannot be computed are None.
    """
    known = lambda *values: all(v is not None for v in values)
    peak = source = None
    if known(probe_flops_per_s):
        beat = known(achieved_flops_per_s) and achieved_flops_per_s > probe_flops_per_s
        peak = achieved_flops_per_s if beat else probe_flops_per_s
        source = "step" if beat else "probe"
    return {
        "achieved_flops_per_s": achieved_flops_per_s,
        "probe_flops_per_s": probe_flops_per_s,
        "peak_flops_per_s": peak,
        "peak_source": source,
        "mfu": achieved_flops_per_s / peak if known(achieved_flops_per_s, peak) else None,
        "nominal_peak_flops_per_s": nominal_flops_per_s,
        "mfu_nominal": achieved_flops_per_s / nominal_flops_per_s
        if known(achieved_flops_per_s, nominal_flops_per_s)
        else None,
    }
