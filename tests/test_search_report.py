"""A search's report: report.html carries the history and the views; the slice plot shows each
trial's (setting, objective) pair, checked against the history written by hand."""

import json
import re

import numpy as np

from nstjax.sweep import search_report
from nstjax.sweep.workdir import Workdir

HISTORY = [
    {"trial": 0, "state": "complete", "objective": 1.5, "feasible": True,
     "params": {"style_weight": 10.0, "tv_weight": 0.1}},
    {"trial": 1, "state": "pruned", "objective": 0.5, "feasible": True,
     "params": {"style_weight": 1000.0, "tv_weight": 1.0}},
    {"trial": 2, "state": "complete", "objective": 2.0, "feasible": True,
     "params": {"style_weight": 30.0, "tv_weight": 3.0}},
    {"trial": 3, "state": "complete", "objective": 1.0, "feasible": True,
     "params": {"style_weight": 3.0, "tv_weight": 0.3}},
]  # fmt: skip


def _page_data(path):
    text = path.read_text()
    block = re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S)
    return json.loads(block.group(1))


def test_report_has_history_best_so_far_and_views(tmp_path):
    work = Workdir(tmp_path)
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "trials.json").write_text(json.dumps(HISTORY))
    search_report.write_search_report(work, HISTORY, {"style_weight": 0.8, "tv_weight": 0.2})
    data = _page_data(tmp_path / "report.html")
    trials = data["history"]["trials"]
    assert [t["trial"] for t in trials] == [0, 1, 2, 3]
    # A pruned trial's score is intermediate: the page shows no objective for it, and the best
    # so far counts complete trials only.
    assert [t["objective"] for t in trials] == [1.5, None, 2.0, 1.0]
    complete = [e["objective"] if e["state"] == "complete" else np.nan for e in HISTORY]
    assert [t["best"] for t in trials] == list(np.fmax.accumulate(complete))
    assert [v["src"] for v in data["views"]] == ["search/slice.png", "search/importances.png"]
    for view in data["views"]:
        assert (tmp_path / view["src"]).stat().st_size > 1000


def test_slice_plot_points_are_the_trials():
    figure = search_report.slice_figure(HISTORY)
    assert [ax.get_xlabel() for ax in figure.axes[:2]] == ["style_weight", "tv_weight"]
    for ax, name in zip(figure.axes, ("style_weight", "tv_weight")):
        shown = sorted(tuple(p) for c in ax.collections for p in c.get_offsets())
        expected = sorted((e["params"][name], e["objective"]) for e in HISTORY)
        assert shown == expected
    # A positive setting spanning more than two decades gets a log axis (style_weight: 3..1000;
    # tv_weight: 0.1..3 stays linear).
    assert [ax.get_xscale() for ax in figure.axes[:2]] == ["log", "linear"]


def test_no_views_without_objectives(tmp_path):
    assert search_report.slice_figure([{"trial": 0, "state": "running", "objective": None,
                                        "params": {"a": 1}}]) is None  # fmt: skip
    assert search_report.importances_figure({}) is None
