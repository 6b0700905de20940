"""A plain-text table of measures: one row per measure, one column per image."""

from collections.abc import Sequence

from nstjax.quality.names import MEASURES


def format_table(labels: Sequence[str], scores: Sequence[dict[str, float] | None]) -> str:
    """The measures of several images as aligned text.

    Args:
        labels: a column heading per image (e.g. its file name).
        scores: each image's ``{name: value}`` (``Result.quality``); None shows as ``-``.

    Returns:
        Lines ``measure  better  value...``; only measures some image has are listed.
    """
    names = [m for m in MEASURES if any(s and m.name in s for s in scores)]
    header = ["measure", "better", *labels]
    rows = [header]
    for m in names:
        values = [f"{s[m.name]:.4g}" if s and m.name in s else "-" for s in scores]
        rows.append([m.name, "higher" if m.higher_is_better else "lower", *values])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)
