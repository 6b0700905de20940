"""The measures' names and directions, defined once: every table, CSV column and CLI flag reads them
from :data:`MEASURES`."""

from typing import NamedTuple

from nstjax.errors import NstjaxError


class Measure(NamedTuple):
    """One quality measure.

    Attributes:
        name: the key of the measure in every result (``Result.quality``, ``run.json``, ``--json``).
        higher_is_better: its direction.
        summary: what it is, in a few words.
    """

    name: str
    higher_is_better: bool
    summary: str


MEASURES: tuple[Measure, ...] = (
    Measure("content_fidelity", True, "Wang et al. CF: feature cosine to the content"),
    Measure("global_effects", True, "Wang et al. GE: (Gram cosine + color similarity) / 2"),
    Measure("local_patterns", True, "Wang et al. LP: (LP1 + LP2) / 2"),
    Measure("local_patterns1", True, "Wang et al. LP1: mean best-match patch cosine"),
    Measure("local_patterns2", True, "Wang et al. LP2: distinct style patches matched, ratio"),
    Measure("color_similarity", True, "Wang et al. GE's half: 128-bin histogram cosine"),
    Measure("style_distance", False, "Gram distance to the style, conv1_1..conv5_1"),
    Measure("content_distance", False, "feature distance to the content at conv4_2"),
    Measure("sliced_wasserstein", False, "sliced W2 of feature distributions, conv1_1..conv5_1"),
    Measure("ssim", True, "SSIM to the content (dm-pix)"),
    Measure("psnr", True, "PSNR to the content, dB (dm-pix)"),
)
"""Every measure, in report order."""

MEASURE_NAMES: tuple[str, ...] = tuple(m.name for m in MEASURES)
HIGHER_IS_BETTER: dict[str, bool] = {m.name: m.higher_is_better for m in MEASURES}


def check_names(names, option: str = "names") -> tuple[str, ...]:
    """``names`` (an iterable or a comma-separated string) validated, in :data:`MEASURES` order.

    Args:
        names: measure names; ``None`` means all of them.
        option: what to call the argument in an error message.

    Raises:
        NstjaxError: for an unknown name (the message lists the known ones) or an empty list.
    """
    if names is None:
        return MEASURE_NAMES
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    unknown = [n for n in names if n not in HIGHER_IS_BETTER]
    if unknown:
        raise NstjaxError(
            f"{option}: unknown measure(s) {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(MEASURE_NAMES)}"
        )
    if not names:
        raise NstjaxError(f"{option}: no measure named; known: {', '.join(MEASURE_NAMES)}")
    return tuple(n for n in MEASURE_NAMES if n in names)
