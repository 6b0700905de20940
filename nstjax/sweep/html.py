"""``report.html``: a sweep in one self-contained page (a sortable, filterable table of the runs,
their loss curves, a trade-off scatter with the Pareto front, a search's history).

The page needs no server and no network: its script and styles are inline
(``report_page.js``/``report_page.css`` beside this module), the runs' data is one JSON block,
thumbnails are small JPEGs inlined as data URIs. Each thumbnail links to the run's full image
by a path relative to the page (``runs/<id>/image.png``), as does the selected run's panel, so
those open while the page sits in its workdir. Everything the page shows is computed here
(:func:`page_data`: columns, values, downsampled curves, the Pareto fronts, the best-so-far of a
search); the script only draws, sorts and filters.

Opened as ``report.html#sort=-COLUMN&filter=TEXT&run=ID&x=MEASURE&y=MEASURE``, the page starts
sorted (by clicking the column's header: once ascending, twice descending), filtered, with a run
selected and the scatter's axes chosen: a link to a view, and how the browser test drives it.
"""

import base64
import datetime
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nstjax import atomic, grid
from nstjax.engine import METRICS
from nstjax.sweep.expand import Expansion, SweepRun, value_label
from nstjax.sweep.pareto import pareto_front
from nstjax.sweep.trials import SearchHistory

THUMBNAIL = 96
"""Long side of the inlined thumbnails, pixels."""
CURVE_POINTS = 200
"""The most steps of a loss history the page keeps (evenly spaced, first and last included)."""
DEFAULT_SCATTER = ("content_fidelity", "global_effects")
"""The scatter's axes when the page opens (where the sweep has those measures)."""
_ASSETS = Path(__file__).with_name("report_page")

ImagePath = Callable[[SweepRun], Path | None]


def _column(key: str, label: str, group: str, **extra: Any) -> dict[str, Any]:
    return {"key": key, "label": label, "group": group, **extra}


def _columns(
    expansion: Expansion, measures: Mapping[str, bool | None]
) -> tuple[list[dict], list[Callable[[SweepRun, dict], Any]]]:
    """The table's columns and, for each, a function ``(run, record) -> value``."""
    runs = expansion.runs
    hyper = list(runs[0].values) if runs else []
    cols = [_column("id", "id", "run"), _column("label", "label", "run")]
    cols.append(_column("status", "status", "run"))
    get = [lambda r, _: r.id, lambda r, _: r.label, lambda r, rec: rec.get("status", "pending")]
    for axis in expansion.varying:
        cols.append(_column(f"axis:{axis}", axis, "axis"))
        get.append(lambda r, _, axis=axis: r.coords[axis])  # already its label
    for name in ("content", "style", *hyper):
        if name in expansion.varying:
            continue  # shown as an axis
        labels = {value_label(_value(r, name)) for r in runs}
        cols.append(_column(f"hp:{name}", name, "hyperparameter", constant=len(labels) == 1))
        get.append(lambda r, _, name=name: _plain(_value(r, name)))
    for term in METRICS:
        cols.append(_column(f"final:{term}", f"final {term}", "final loss"))
        get.append(lambda _, rec, term=term: (rec.get("final") or {}).get(term))
    for name, higher in measures.items():
        arrow = {True: " \u2191", False: " \u2193", None: ""}[higher]
        cols.append(_column(f"quality:{name}", name + arrow, "quality", higher=higher))
        get.append(lambda _, rec, name=name: (rec.get("quality") or {}).get(name))
    for key, label in (("converged_at", "converged at"), ("failed_at", "failed at")):
        cols.append(_column(key, label, "run"))
        get.append(lambda _, rec, key=key: rec.get(key))
    cols.append(_column("wall_s", "batch wall s", "run"))
    get.append(lambda _, rec: rec.get("wall_s"))
    return cols, get


def _value(run: SweepRun, name: str) -> Any:
    return getattr(run, name) if name in ("content", "style") else run.values[name]


def _plain(value: Any) -> Any:
    """A cell's value: numbers and strings as they are, a file as its stem, lists as labels."""
    if value is None or isinstance(value, bool):
        return value_label(value) if isinstance(value, bool) else None
    if isinstance(value, (int, float)):
        return _finite(value)
    return value_label(value)


def _finite(value: Any) -> float | int | None:
    if value is None:
        return None
    value = float(value) if not isinstance(value, int) else value
    return value if np.isfinite(value) else None


def _json_cell(value: Any) -> Any:
    """A float as JSON can hold it (non-finite: ``None``)."""
    return _finite(value) if isinstance(value, float) else value


_THUMBS: dict[tuple, str] = {}
"""Data URIs of thumbnails already made, by (file, modification time, size)."""


def thumbnail_uri(path: Path, size: int = THUMBNAIL) -> str | None:
    """A JPEG data URI of the image file scaled to a long side of ``size``, ``None`` if the file
    cannot be read. Cached by the file's modification time, since the page is rewritten after
    every batch."""
    try:
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, size)
        if key not in _THUMBS:
            buffer = io.BytesIO()
            grid.thumbnail(path, size).save(buffer, format="JPEG", quality=85)
            _THUMBS[key] = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
        return _THUMBS[key]
    except OSError:
        return None


def downsample(values: Sequence[float | None], points: int = CURVE_POINTS) -> dict[str, list]:
    """At most ``points`` evenly spaced entries of a history, the first and last included.

    Returns:
        ``{"step": [...], "value": [...]}`` (non-finite values as ``None``).
    """
    n = len(values)
    steps = np.unique(np.round(np.linspace(0, n - 1, min(n, points))).astype(int)) if n else []
    return {"step": [int(i) for i in steps], "value": [_finite(values[i]) for i in steps]}


def _curves(record: dict) -> dict[str, list] | None:
    history = record.get("history")
    if not history:
        return None
    parts = {term: downsample(history[term]) for term in METRICS if term in history}
    steps = next(iter(parts.values()))["step"] if parts else []
    return {"step": steps, **{term: part["value"] for term, part in parts.items()}}


def pareto_fronts(
    ids: Sequence[str],
    values: Mapping[str, Sequence[float | None]],
    higher: Mapping[str, bool | None],
) -> dict[str, list[str]]:
    """The Pareto-optimal run ids of every ordered pair of measures with a known direction.

    Args:
        ids: the eligible runs (finished, not failed).
        values: measure -> one value per run of ``ids`` (``None`` where it has none).
        higher: measure -> whether larger is better (``None``: unknown, no front).

    Returns:
        ``"x\\ty"`` -> the ids on the front of measure ``x`` against measure ``y``.
    """
    fronts = {}
    names = [m for m in values if higher.get(m) is not None]
    for x in names:
        for y in names:
            if x == y:
                continue
            points = np.array(
                [
                    [np.nan if v is None else v for v in values[x]],
                    [np.nan if v is None else v for v in values[y]],
                ],
                np.float64,
            ).T.reshape(-1, 2)
            mask = pareto_front(points, (higher[x], higher[y]))
            fronts[f"{x}\t{y}"] = [i for i, on in zip(ids, mask) if on]
    return fronts


def _history(history: SearchHistory | None) -> dict[str, Any] | None:
    if history is None:
        return None
    best = history.best_so_far()
    return {
        "objective": history.objective,
        "direction": history.direction,
        "trials": [
            {
                "trial": t.trial,
                "objective": _finite(t.objective),
                "best": b,
                "params": ", ".join(f"{k}={value_label(v)}" for k, v in t.params.items()),
                "run": t.run,
            }
            for t, b in zip(history.trials, best)
        ],
    }


def page_data(
    expansion: Expansion,
    records: Mapping[str, dict | None],
    measures: Mapping[str, bool | None],
    image_path: ImagePath,
    base: Path,
    history: SearchHistory | None = None,
    title: str = "sweep",
    views: Sequence[Mapping[str, str]] = (),
) -> dict[str, Any]:
    """Everything ``report.html`` shows, as JSON-able data.

    Args:
        expansion: the sweep.
        records: run id -> its ``run.json`` record (``None``: pending).
        measures: the quality measures' names, in column order -> whether higher is better
            (``None``: unknown, then the measure has no Pareto front).
        image_path: a run -> its image file (``None`` if it has none).
        base: the folder of the page (links to the images are relative to it).
        history: a search's history, if the sweep is one.
        title: the page's heading.
        views: images shown in the search section (``{"title", "src"}``, ``src`` relative to the
            page), e.g. a search's slice and importance plots.

    Returns:
        ``columns``, ``runs`` (``id``, ``label``, ``status``, ``cells`` in column order,
        ``thumb``, ``image``, ``curves``), ``measures``, ``pareto``, ``scatter`` (the axes it
        opens with), ``history``, ``counts``, ``title``, ``written``.
    """
    columns, getters = _columns(expansion, measures)
    runs = [
        _run_row(run, records.get(run.id) or {}, getters, measures, image_path, base)
        for run in expansion.runs
    ]
    eligible = [r for r in runs if r["status"] == "done"]
    values = {m: [r["quality"][m] for r in eligible] for m in measures}
    counts = {s: sum(r["status"] == s for r in runs) for s in ("done", "failed", "pending")}
    return {
        "title": title,
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "counts": counts,
        "columns": columns,
        "runs": runs,
        "measures": [{"name": m, "higher": h} for m, h in measures.items()],
        "pareto": pareto_fronts([r["id"] for r in eligible], values, measures),
        "scatter": _scatter_axes(list(measures)),
        "history": _history(history),
        "views": [dict(v) for v in views],
    }


def _run_row(run, record: dict, getters, measures, image_path: ImagePath, base: Path) -> dict:
    """One run's row of :func:`page_data` (``record`` empty: pending)."""
    path = image_path(run) if record else None
    return {
        "id": run.id,
        "label": run.label,
        "status": record.get("status", "pending"),
        "cells": [_json_cell(get(run, record)) for get in getters],
        "thumb": thumbnail_uri(path) if path is not None else None,
        "image": Path(os.path.relpath(path, base)).as_posix() if path else None,
        "curves": _curves(record) if record else None,
        "quality": {m: _finite((record.get("quality") or {}).get(m)) for m in measures},
    }


def _scatter_axes(names: list[str]) -> list[str | None]:
    """The scatter plot's opening axes: :data:`DEFAULT_SCATTER`'s measures where the sweep has
    them, else its first other measures."""
    scatter = [m if m in names else None for m in DEFAULT_SCATTER]
    return [s or next((n for n in names if n not in scatter), None) for s in scatter]


def render(data: Mapping[str, Any]) -> str:
    """The page: the data as a JSON block, the script and styles inline."""
    payload = json.dumps(data, allow_nan=False, separators=(",", ":"))
    payload = payload.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    script = (_ASSETS.with_suffix(".js")).read_text()
    style = (_ASSETS.with_suffix(".css")).read_text()
    title = str(data.get("title", "sweep")).replace("&", "&amp;").replace("<", "&lt;")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f"<title>{title}: sweep report</title>\n<style>\n{style}</style></head>\n<body>\n"
        f'<script type="application/json" id="data">{payload}</script>\n'
        f"<script>\n{script}</script>\n</body></html>\n"
    )


def write_html(
    path: Path,
    expansion: Expansion,
    records: Mapping[str, dict | None],
    measures: Mapping[str, bool | None],
    image_path: ImagePath,
    history: SearchHistory | None = None,
    title: str = "sweep",
    views: Sequence[Mapping[str, str]] = (),
) -> None:
    """Writes ``report.html`` (atomically): :func:`page_data` drawn by :func:`render`."""
    path = Path(path)
    data = page_data(expansion, records, measures, image_path, path.parent, history, title, views)
    atomic.write_text(path, render(data))
