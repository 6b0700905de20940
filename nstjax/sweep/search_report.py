"""A search's report: ``report.html`` with its history, and two of Optuna's views as images.

Optuna's own plots need plotly; the two views a search report needs are small enough to draw with
matplotlib (already a dependency), from ``trials.json`` and ``importances.json``:

- ``search/slice.png``: each searched parameter against the objective, one panel per parameter
  (Optuna's slice plot): complete trials coloured by trial number, pruned ones in grey;
- ``search/importances.png``: each parameter's importance for the objective (Optuna's
  parameter-importance plot).
"""

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nstjax import atomic
from nstjax.sweep import html, trials
from nstjax.sweep.expand import Expansion
from nstjax.sweep.workdir import REPORT_HTML, SEARCH, Workdir

SLICE_PNG = "slice.png"
IMPORTANCES_PNG = "importances.png"


def _save(figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    atomic.write_bytes(path, buffer.getvalue())


def slice_figure(history: Sequence[Mapping[str, Any]]):
    """Optuna's slice plot: per parameter, the objective of each told trial against its value.

    Returns:
        A matplotlib ``Figure`` (Agg canvas), or ``None`` when no trial has an objective.
    """
    from matplotlib.figure import Figure

    told = [e for e in history if e.get("objective") is not None and e.get("params")]
    if not told:
        return None
    names = sorted({name for e in told for name in e["params"]})
    cols = min(len(names), 4)
    rows = -(-len(names) // cols)
    figure = Figure(figsize=(3.2 * cols, 2.6 * rows), layout="constrained")
    for i, name in enumerate(names):
        ax = figure.add_subplot(rows, cols, i + 1)
        for pruned, style in ((True, {"color": "0.7"}), (False, {"cmap": "viridis"})):
            points = [e for e in told if (e["state"] == "pruned") == pruned and name in e["params"]]
            if not points:
                continue
            xs = [e["params"][name] for e in points]
            ys = [e["objective"] for e in points]
            colour = {} if pruned else {"c": [e["trial"] for e in points]}
            ax.scatter(xs, ys, s=14, **style, **colour, label="pruned" if pruned else "complete")
        if all(isinstance(e["params"].get(name), (int, float)) and e["params"][name] > 0
               for e in told if name in e["params"]):  # fmt: skip
            values = [e["params"][name] for e in told if name in e["params"]]
            if max(values) / min(values) > 100:
                ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel("objective" if i % cols == 0 else "")
    figure.suptitle("objective against each searched setting (colour: trial number; grey: pruned)")
    return figure


def importances_figure(importances: Mapping[str, float]):
    """Optuna's parameter-importance plot as horizontal bars (``None`` when there are none)."""
    from matplotlib.figure import Figure

    if not importances:
        return None
    ordered = sorted(importances.items(), key=lambda kv: kv[1])
    figure = Figure(figsize=(6, 0.35 * len(ordered) + 1.2), layout="constrained")
    ax = figure.add_subplot()
    ax.barh([k for k, _ in ordered], [v for _, v in ordered], color="#1f77b4")
    ax.set_xlabel("importance for the objective (sums to 1)")
    ax.set_title("parameter importances (Optuna, PED-ANOVA)")
    return figure


def write_search_report(
    workdir: Workdir, history: Sequence[Mapping[str, Any]], importances: Mapping[str, float] | None
) -> None:
    """Writes the views (``search/slice.png``, ``search/importances.png``) and ``report.html``
    (the objective per trial, the best so far, every trial's settings, and the views)."""
    folder = workdir.path / SEARCH
    views = []
    for name, title, figure in (
        (SLICE_PNG, "objective against each setting", slice_figure(history)),
        (IMPORTANCES_PNG, "parameter importances", importances_figure(importances or {})),
    ):
        if figure is not None:
            _save(figure, folder / name)
            views.append({"title": title, "src": f"search/{name}"})
    html.write_html(
        workdir.path / REPORT_HTML,
        Expansion([], {}, []),
        {},
        {},
        lambda run: None,
        trials.read(workdir.path),
        title=workdir.path.resolve().name,
        views=views,
    )
