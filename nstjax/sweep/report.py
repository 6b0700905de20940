"""A finished sweep at a glance: ``summary.csv``, a labelled contact sheet and the loss curves."""

import csv
import io
import itertools
from collections.abc import Callable, Sequence
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


def summary_rows(
    expansion: Expansion, records: dict[str, dict[str, Any] | None]
) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of ``summary.csv``: one row per run.

    Columns: id, label, status, the sweep's varying axes, every hyperparameter, the final loss
    terms, the step a failed run stopped at, its wall time and its image.
    """
    hyper = list(expansion.runs[0].values) if expansion.runs else []
    header = ["id", "label", "status", *(f"axis:{a}" for a in expansion.varying)]
    header += ["content", "style", *hyper, *(f"final_{m}" for m in METRICS)]
    header += ["failed_at", "converged_at", "evaluations", "wall_s", "image"]
    rows = []
    for run in expansion.runs:
        record = records.get(run.id) or {}
        final = record.get("final") or {}
        rows.append(
            [run.id, run.label, record.get("status", "pending")]
            + [run.coords[a] for a in expansion.varying]
            + [run.content, run.style]
            + [_cell(run.values[h]) for h in hyper]
            + [final.get(m, "") for m in METRICS]
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


def write_summary(path: Path, expansion: Expansion, records: dict[str, dict | None]) -> None:
    """Writes ``summary.csv`` (atomically)."""
    header, rows = summary_rows(expansion, records)
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
                cell=cell,
                font_size=max(10, cell // 10),
                gap=4,
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


def write_loss_curves(
    path: Path, runs: Sequence[SweepRun], records: dict[str, dict | None], legend_max: int = 12
) -> None:
    """Plots every finished run's loss history (total, content and style terms, log scale).

    Args:
        path: the PNG to write (atomically).
        runs: the runs, in sweep order.
        records: run id -> its ``run.json`` record (``None`` if unfinished).
        legend_max: label the curves when there are at most this many runs.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4), dpi=100)
    figure.subplots_adjust(left=0.06, right=0.99, bottom=0.12, top=0.92, wspace=0.25)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3)
    finished = [(r, records[r.id]) for r in runs if records.get(r.id)]
    colors = _colors(len(finished))
    for ax, metric in zip(axes, ("loss", "content", "style")):
        for (run, record), color in zip(finished, colors):
            values = np.asarray(
                [np.nan if v is None else v for v in record["history"][metric]], float
            )
            values[values <= 0] = np.nan
            ax.plot(np.arange(1, len(values) + 1), values, color=color, lw=1, label=run.label)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(
            {"loss": "total loss", "content": "content term", "style": "style term"}[metric]
        )
        ax.grid(True, alpha=0.3)
    if 0 < len(finished) <= legend_max:
        axes[0].legend(fontsize=6)
    with atomic.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]
