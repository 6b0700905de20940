"""A finished sweep at a glance: ``summary.csv``, a labelled contact sheet and the loss curves."""

import csv
import io
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nstjax import atomic, grid
from nstjax.engine import METRICS
from nstjax.errors import NstjaxError
from nstjax.sweep.expand import Expansion, SweepRun

ImagePath = Callable[[SweepRun], Path | None]
"""A run -> its image file, or ``None`` when it has none (yet)."""


QUALITY_PREFIX = "quality_"
"""``summary.csv``'s column of a quality measure is its name after this prefix, as the final loss
terms' are ``final_<term>``."""


def quality_measures(records: Mapping[str, dict | None]) -> dict[str, bool | None]:
    """The quality measures the records hold (``record["quality"]``) -> whether higher is
    better: in :data:`nstjax.quality.MEASURES` order, then any other name (direction ``None``:
    unknown) in order of first appearance."""
    from nstjax.quality import HIGHER_IS_BETTER, MEASURE_NAMES

    found: dict[str, None] = {}
    for record in records.values():
        found.update(dict.fromkeys((record or {}).get("quality") or {}))
    known = [m for m in MEASURE_NAMES if m in found]
    return {m: HIGHER_IS_BETTER.get(m) for m in [*known, *(m for m in found if m not in known)]}


def summary_rows(
    expansion: Expansion,
    records: dict[str, dict[str, Any] | None],
    measures: Sequence[str] = (),
) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of ``summary.csv``: one row per run.

    Columns: id, label, status, the sweep's varying axes, every hyperparameter, the final loss
    terms, the quality measures (``quality_<name>``, empty where a run has none), the step a
    failed run stopped at, its wall time and its image.

    Args:
        expansion: the sweep.
        records: run id -> its ``run.json`` record (``None`` if unfinished).
        measures: the quality measures' names, in column order.
    """
    hyper = list(expansion.runs[0].values) if expansion.runs else []
    header = ["id", "label", "status", *(f"axis:{a}" for a in expansion.varying)]
    header += ["content", "style", *hyper, *(f"final_{m}" for m in METRICS)]
    header += [QUALITY_PREFIX + m for m in measures]
    header += ["failed_at", "converged_at", "evaluations", "wall_s", "image"]
    rows = []
    for run in expansion.runs:
        record = records.get(run.id) or {}
        final = record.get("final") or {}
        quality = record.get("quality") or {}
        rows.append(
            [run.id, run.label, record.get("status", "pending")]
            + [run.coords[a] for a in expansion.varying]
            + [run.content, run.style]
            + [_cell(run.values[h]) for h in hyper]
            + [_number(final.get(m)) for m in METRICS]
            + [_number(quality.get(m)) for m in measures]
            + [record.get("failed_at", ""), record.get("converged_at", "")]
            + [record.get("evaluations", ""), record.get("wall_s", "")]
            + [f"runs/{run.id}/image.png" if record else ""]
        )
    return header, rows


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    if isinstance(value, dict):
        return "+".join(f"{k}:{v}" for k, v in value.items())
    return "" if value is None else value


def _number(value: Any) -> Any:
    """A number as ``summary.csv`` shows it: empty for a missing one (``None``: non-finite
    values are stored as ``null`` in ``run.json``)."""
    return "" if value is None else value


def write_summary(
    path: Path,
    expansion: Expansion,
    records: dict[str, dict | None],
    measures: Sequence[str] = (),
) -> None:
    """Writes ``summary.csv`` (atomically): :func:`summary_rows`."""
    header, rows = summary_rows(expansion, records, measures)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic.write_text(path, buffer.getvalue())


def sheet_axes(expansion: Expansion, rows: str = "", cols: str = "") -> tuple[str, str]:
    """The contact sheet's row and column axes: the configured ones, else the first two varying
    axes (``"style"`` and ``"content"`` when nothing else varies).

    Raises:
        NstjaxError: a configured axis is not an axis of the sweep.
    """
    known = list(expansion.axes)
    for name, value in (("rows", rows), ("cols", cols)):
        if value and value not in known:
            raise NstjaxError(
                f"sweep.contact_sheet.{name}={value!r} is not an axis of this sweep "
                f"(axes: {', '.join(known)})"
            )
    candidates = [a for a in expansion.varying if a not in (rows, cols)]
    candidates += [a for a in ("style", "content") if a not in candidates]
    if not rows:
        rows = next(a for a in candidates if a != cols)
    if not cols:
        cols = next(a for a in candidates if a != rows)
    return rows, cols


def _thumbnail(path: Path, cell: int) -> Image.Image | None:
    """The image file as a thumbnail for a ``cell`` square, ``None`` if it cannot be read."""
    try:
        return grid.thumbnail(path, cell)
    except OSError:
        return None


def _sheet_cell(run: SweepRun | None, image_path: ImagePath, cell: int) -> grid.Cell:
    """A run's thumbnail; grey for a run without a (readable) image, blank for no run."""
    if run is None:
        return None
    path = image_path(run)
    thumb = _thumbnail(path, cell) if path is not None else None
    return grid.MISSING if thumb is None else thumb


def contact_sheet(
    expansion: Expansion,
    image_path: ImagePath,
    rows: str,
    cols: str,
    cell: int = 128,
) -> Image.Image:
    """A grid of the runs' images: ``rows`` down, ``cols`` across, one panel per combination of
    the other varying axes (stacked, each titled with its values).

    Args:
        expansion: the sweep.
        image_path: ``image_path(run)`` -> the run's image file, or ``None`` if it has none.
        rows: the axis whose values label the rows.
        cols: the axis whose values label the columns.
        cell: longer side of each thumbnail, pixels.

    Returns:
        The sheet as an RGB Pillow image (:func:`nstjax.grid.labelled_grid` panels).
    """
    row_values, col_values = expansion.axes[rows], expansion.axes[cols]
    others = [a for a in expansion.varying if a not in (rows, cols)]
    panels = list(itertools.product(*(expansion.axes[a] for a in others))) or [()]
    runs: dict[tuple, SweepRun] = {}
    for run in expansion.runs:
        key = (tuple(run.coords[a] for a in others), run.coords[rows], run.coords[cols])
        runs.setdefault(key, run)
    sheets = []
    for panel in panels:
        cells = [
            [_sheet_cell(runs.get((panel, r, c)), image_path, cell) for c in col_values]
            for r in row_values
        ]
        title = ", ".join(f"{a}={v}" for a, v in zip(others, panel))
        sheets.append(
            grid.labelled_grid(
                cells,
                col_labels=[str(v) for v in col_values],
                row_labels=[str(v) for v in row_values],
                corner=f"{rows} \\ {cols}",
                title=title,
                sizes=grid.Sizes(cell=cell, font_size=max(10, cell // 10), gap=4),
            )
        )
    return grid.stack(sheets)


def write_contact_sheet(
    path: Path,
    expansion: Expansion,
    image_path: ImagePath,
    rows: str = "",
    cols: str = "",
    cell: int = 128,
) -> tuple[str, str]:
    """Writes the contact sheet PNG (atomically); returns the row and column axes used."""
    rows, cols = sheet_axes(expansion, rows, cols)
    sheet = contact_sheet(expansion, image_path, rows, cols, cell)
    with atomic.atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return rows, cols


LOSS_PANELS = {
    "loss": "total loss (weighted sum)",
    "content": "content term (unweighted)",
    "style": "style term (unweighted)",
    "tv": "total-variation term (unweighted)",
}
"""The panels of ``loss_curves.png``: history column -> title (:data:`nstjax.engine.METRICS`)."""


def loss_figure(runs: Sequence[SweepRun], records: Mapping[str, dict | None], legend_max: int = 12):
    """Every finished run's loss history: one panel per term (:data:`LOSS_PANELS`), log scale,
    against the step.

    The value at step ``i`` is the loss of the image before step ``i`` (step 0: the initial
    image), as ``run.json``'s ``history`` holds it; losses have no unit (nstjax's
    normalisation, ``nstjax/losses.py``). Up to ``legend_max`` runs are named in a legend;
    more are coloured by their position in the sweep, with a colour bar.

    Args:
        runs: the runs, in sweep order.
        records: run id -> its ``run.json`` record (``None`` if unfinished).
        legend_max: name the curves in a legend when there are at most this many runs.

    Returns:
        A matplotlib ``Figure`` (Agg canvas).
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    finished = [(r, records[r.id]) for r in runs if records.get(r.id)]
    legend = 0 < len(finished) <= legend_max
    columns = 2 if max((len(r.label) for r, _ in finished), default=0) > 45 else 3
    legend_h = (math.ceil(len(finished) / columns) * 0.17 + 0.45) if legend else 0.0
    height = 3.9 + legend_h  # inches: the panels, then the legend under them
    figure = Figure(figsize=(16, height), dpi=100)
    figure.subplots_adjust(left=0.05, right=0.92 if not legend else 0.99, wspace=0.3)
    figure.subplots_adjust(bottom=(legend_h + 0.55) / height, top=1 - 0.55 / height)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(LOSS_PANELS))
    cmap = colormaps["viridis"]
    for ax, (metric, title) in zip(axes, LOSS_PANELS.items()):
        positive = False
        for run, record in finished:
            values = np.asarray(
                [np.nan if v is None else v for v in record["history"][metric]], float
            )
            values[values <= 0] = np.nan
            positive |= bool(np.isfinite(values).any())
            color = cmap(run.index / max(len(runs) - 1, 1))
            ax.plot(np.arange(len(values)), values, color=color, lw=1, label=run.label)
        if positive:
            ax.set_yscale("log")
        ax.set_xlabel("step (loss of the image before it)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("value (log scale, no unit)")
    figure.suptitle(f"Loss histories of {len(finished)} finished run(s) of {len(runs)}")
    if legend:
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="lower center", ncol=columns, fontsize=8, frameon=False)
    elif finished:
        _run_colorbar(figure, len(runs))
    return figure


def write_loss_curves(
    path: Path, runs: Sequence[SweepRun], records: Mapping[str, dict | None], legend_max: int = 12
) -> None:
    """Writes :func:`loss_figure` as a PNG (atomically)."""
    figure = loss_figure(runs, records, legend_max)
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def _run_colorbar(figure, n_runs: int) -> None:
    """A colour bar keyed by the runs' position in the sweep (too many runs for a legend)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mappable = ScalarMappable(Normalize(0, max(n_runs - 1, 1)), colormaps["viridis"])
    bar = figure.colorbar(mappable, cax=figure.add_axes((0.94, 0.14, 0.012, 0.72)))
    bar.set_label("run (position in the sweep)")
