"""The sweep report's pieces on synthetic records: the Pareto front against a brute-force check,
summary.csv's quality columns, the page's data, a search's best-so-far, readable sheet labels,
labelled loss plots."""

import base64
import csv
import io
import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sweep_records import QUALITY, synthetic

from nstjax import grid
from nstjax.errors import NstjaxError
from nstjax.sweep import html, report, trials
from nstjax.sweep.expand import Expansion, SweepRun
from nstjax.sweep.pareto import pareto_front


def brute_force_front(points, higher):
    """Not dominated: no other point at least as good on both and strictly better on one."""
    gains = np.asarray(points, float) * np.where(higher, 1.0, -1.0)
    finite = np.isfinite(gains).all(axis=1)
    out = []
    for i, p in enumerate(gains):
        if not finite[i]:
            out.append(False)
            continue
        others = gains[finite & (np.arange(len(gains)) != i)]
        dominated = ((others >= p).all(axis=1) & (others > p).any(axis=1)).any()
        out.append(not dominated)
    return np.array(out, bool)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 1.0, 2.0, 3.0, math.nan, math.inf]),  # ties are the hard part
            st.sampled_from([0.0, 0.5, 1.0, 1.5, math.nan]),
        ),
        max_size=25,
    ),
    st.tuples(st.booleans(), st.booleans()),
)
def test_pareto_front_matches_brute_force(points, higher):
    points = np.array(points, float).reshape(-1, 2)
    np.testing.assert_array_equal(pareto_front(points, higher), brute_force_front(points, higher))


def test_pareto_front_on_random_continuous_points():
    rng = np.random.default_rng(0)
    for higher in itertools.product([True, False], repeat=2):
        points = rng.normal(size=(300, 2))
        np.testing.assert_array_equal(
            pareto_front(points, higher), brute_force_front(points, higher)
        )


def test_pareto_front_by_hand():
    points = [[1, 1], [2, 0], [0, 2], [1, 1], [0.5, 0.5], [2, 0]]
    # maximise both: (0.5, 0.5) is dominated by (1, 1); equal points stay on the front
    assert pareto_front(points, (True, True)).tolist() == [True, True, True, True, False, True]
    # minimise the second: (2, 0) beats everything
    assert pareto_front(points, (True, False)).tolist() == [False, True, False, False, False, True]


def _image_path(tmp_path):
    return lambda run: tmp_path / "runs" / run.id / "image.png"


def test_summary_has_a_column_per_measure(tmp_path):
    expansion, records = synthetic(tmp_path)
    measures = report.quality_measures(records)
    assert list(measures) == list(QUALITY)  # in the records' order
    report.write_summary(tmp_path / "summary.csv", expansion, records, list(measures))
    with open(tmp_path / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    for row in rows:
        record = records.get(row["id"])
        for name in QUALITY:
            cell = row[f"quality_{name}"]
            if record is None:
                assert cell == "" and row["status"] == "pending"
            else:
                assert float(cell) == record["quality"][name]  # repr round-trips floats


def test_quality_measures_in_the_package_order_with_their_directions():
    records = {"a": {"quality": {"ssim": 0.5, "mystery": 2.0, "content_fidelity": 0.1}}, "b": None}
    measures = report.quality_measures(records)
    assert list(measures.items()) == [
        ("content_fidelity", True),
        ("ssim", True),
        ("mystery", None),  # not a measure of nstjax.quality: no direction, no Pareto front
    ]
    assert report.quality_measures({"a": {"quality": {"style_distance": 1.0}}}) == {
        "style_distance": False
    }


def test_page_data_holds_every_run_and_its_values(tmp_path):
    expansion, records = synthetic(tmp_path)
    data = html.page_data(expansion, records, QUALITY, _image_path(tmp_path), tmp_path)
    assert [r["id"] for r in data["runs"]] == [r.id for r in expansion.runs]
    assert data["counts"] == {"done": 3, "failed": 1, "pending": 2}
    keys = [c["key"] for c in data["columns"]]
    axis = [dict(zip(keys, r["cells"]))["axis:style_weight"] for r in data["runs"]]
    assert axis == ["0.5", "0.5", "30", "30", "1000", "1000"]  # the labels, as the sheet's
    for run in data["runs"]:
        record = records.get(run["id"])
        cells = dict(zip(keys, run["cells"]))
        assert cells["status"] == (record or {}).get("status", "pending")
        for name in QUALITY:
            assert cells[f"quality:{name}"] == (record["quality"][name] if record else None)
        if record is None:
            assert run["thumb"] is None and run["image"] is None and run["curves"] is None
            continue
        assert run["image"] == f"runs/{run['id']}/image.png"  # relative to the page
        thumb = Image.open(io.BytesIO(base64.b64decode(run["thumb"].split(",", 1)[1])))
        assert thumb.format == "JPEG" and max(thumb.size) == html.THUMBNAIL
        curves = run["curves"]
        assert len(curves["step"]) == html.CURVE_POINTS  # 300 steps, downsampled
        assert curves["step"][0] == 0 and curves["step"][-1] == 299
        np.testing.assert_array_equal(
            curves["style"], np.asarray(record["history"]["style"])[curves["step"]]
        )
    # a varying hyperparameter is an axis column; a shared one a hidden (constant) column
    assert "axis:style_weight" in keys and "hp:seed" in keys
    assert next(c for c in data["columns"] if c["key"] == "hp:seed")["constant"]


def test_page_pareto_fronts_leave_out_failed_and_pending_runs(tmp_path):
    expansion, records = synthetic(tmp_path)
    data = html.page_data(expansion, records, QUALITY, _image_path(tmp_path), tmp_path)
    done = [i for i, r in records.items() if r["status"] == "done"]
    for x, y in itertools.permutations(QUALITY, 2):
        points = [[records[i]["quality"][x], records[i]["quality"][y]] for i in done]
        expected = brute_force_front(points, (QUALITY[x], QUALITY[y]))
        assert data["pareto"][f"{x}\t{y}"] == [i for i, on in zip(done, expected) if on]
    assert data["scatter"] == ["content_fidelity", "global_effects"]
    unknown = {**QUALITY, "style_distance": None}  # a measure without a known direction
    data = html.page_data(expansion, records, unknown, _image_path(tmp_path), tmp_path)
    assert sorted(data["pareto"]) == [
        "content_fidelity\tglobal_effects",
        "global_effects\tcontent_fidelity",
    ]


def test_page_escapes_markup_in_labels(tmp_path):
    expansion, records = synthetic(tmp_path, n_done=1, n_runs=1)
    run = expansion.runs[0]
    evil = SweepRun(run.id, 0, "</script><b>x</b>", run.content, run.style, run.values, run.coords)
    expansion = Expansion([evil], expansion.axes, expansion.varying)
    data = html.page_data(expansion, records, QUALITY, _image_path(tmp_path), tmp_path)
    page = html.render(data)
    assert "</script><b>" not in page
    block = page.split('<script type="application/json" id="data">', 1)[1].split("</script>")[0]
    assert json.loads(block)["runs"][0]["label"] == "</script><b>x</b>"


def test_downsample_keeps_short_histories_whole():
    assert html.downsample([3.0, None, 1.0]) == {"step": [0, 1, 2], "value": [3.0, None, 1.0]}
    assert html.downsample([]) == {"step": [], "value": []}


def test_best_so_far_against_numpy():
    rng = np.random.default_rng(1)
    values = list(rng.normal(size=40))
    values[0] = values[7] = None
    values[11] = math.nan
    filled = np.array([np.nan if v is None else v for v in values])
    for direction, accumulate in (("maximize", np.fmax), ("minimize", np.fmin)):
        expected = accumulate.accumulate(filled)  # fmax/fmin skip NaN
        got = np.array([np.nan if v is None else v for v in trials.best_so_far(values, direction)])
        np.testing.assert_array_equal(got, expected)


def test_trials_file_round_trip_and_bad_files(tmp_path):
    assert trials.read(tmp_path) is None
    data = {
        "objective": "content_fidelity",
        "direction": "maximize",
        "trials": [
            {"trial": 0, "objective": 0.5, "params": {"style_weight": 10.0}, "run": "0000"},
            {"trial": 1, "objective": None, "params": {}},
        ],
    }
    (tmp_path / trials.TRIALS).write_text(json.dumps(data))
    history = trials.read(tmp_path)
    assert history.objective == "content_fidelity" and len(history.trials) == 2
    assert history.trials[1] == trials.Trial(1, None, {}, None)
    assert history.best_so_far() == [0.5, 0.5]
    (tmp_path / trials.TRIALS).write_text(json.dumps({**data, "direction": "up"}))
    with pytest.raises(NstjaxError, match="trials.json: not a search history"):
        trials.read(tmp_path)
    (tmp_path / trials.TRIALS).write_text("{")
    with pytest.raises(NstjaxError, match="not JSON"):
        trials.read(tmp_path)


def test_a_search_history_in_the_search_module_format(tmp_path):
    entries = [
        {"trial": 0, "state": "complete", "objective": 0.4, "params": {"a": 1}, "feasible": True},
        {"trial": 1, "state": "pruned", "objective": 0.9, "params": {"a": 2}, "feasible": True},
        {"trial": 2, "state": "complete", "objective": 0.8, "params": {"a": 3}, "feasible": False},
        {"trial": 3, "state": "complete", "objective": 0.6, "params": {"a": 4}, "feasible": True},
    ]
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "trials.json").write_text(json.dumps(entries))
    history = trials.read(tmp_path)
    assert (history.objective, history.direction) == ("score", "maximize")
    # only complete, feasible trials count: 0.4, then 0.6
    assert [t.objective for t in history.trials] == [0.4, None, None, 0.6]
    assert history.best_so_far() == [0.4, 0.4, 0.4, 0.6]


LAYER_SETS = [
    "conv1_1",
    "conv1_1+conv2_1",
    "conv1_1+conv2_1+conv3_1",
    "conv1_1+conv2_1+conv3_1+conv4_1",
    "conv1_1+conv2_1+conv3_1+conv4_1+conv5_1",
    "conv1_1+conv2_1+conv3_1+conv5_1",
]


@pytest.mark.parametrize("width", [60, 90, 134])
def test_sheet_labels_fit_and_stay_distinct(width):
    font = grid.font(12)
    measure = grid._measure()
    fitted = [grid.fit_label(t, width, font) for t in LAYER_SETS]
    for lines in fitted:
        assert 1 <= len(lines) <= 3
        assert all(measure.textlength(line, font=font) <= width for line in lines)
    assert len({tuple(lines) for lines in fitted}) == len(LAYER_SETS)


def test_sheet_labels_wrap_whole_before_abbreviating():
    font = grid.font(12)
    lines = grid.fit_label(LAYER_SETS[4], 134, font)  # a 128-px cell and its gap
    assert "".join(lines) == LAYER_SETS[4]  # broken after "+", nothing dropped
    assert grid.abbreviate(LAYER_SETS[2]) == "conv1_1+2_1+3_1"
    assert grid.abbreviate("gram:1+sliced_wasserstein:0.5") == "gram:1+sliced_wasserstein:0.5"
    assert grid.shorten_middle("abcdefghijklmnopqrstuvwxyz", 60, font).startswith("abc")
    assert grid.shorten_middle("abcdefghijklmnopqrstuvwxyz", 60, font).endswith("xyz")


def test_contact_sheet_header_grows_for_wrapped_labels():
    cells = [[Image.new("RGB", (32, 32), (255, 0, 0))] * 2]
    sizes = grid.Sizes(cell=32, font_size=10)
    one = grid.labelled_grid(cells, col_labels=["a", "b"], sizes=sizes)
    three = grid.labelled_grid(cells, col_labels=["a", LAYER_SETS[4]], sizes=sizes)
    red_top = lambda im: np.nonzero((np.asarray(im) == (255, 0, 0)).all(-1))[0].min()
    assert red_top(three) - red_top(one) >= 2 * 12  # two more lines of 10-px text (+2 spacing)


def test_loss_figure_labels_what_it_shows(tmp_path):
    expansion, records = synthetic(tmp_path)
    figure = report.loss_figure(expansion.runs, records)
    axes = figure.axes[: len(report.LOSS_PANELS)]
    assert [a.get_title() for a in axes] == list(report.LOSS_PANELS.values())
    assert all(a.get_xlabel().startswith("step") and a.get_yscale() == "log" for a in axes)
    assert "log scale" in axes[0].get_ylabel()
    (legend,) = figure.legends
    finished = [r.label for r in expansion.runs if r.id in records]
    assert [t.get_text() for t in legend.get_texts()] == finished
    np.testing.assert_allclose(axes[2].lines[1].get_ydata(), records["0001"]["history"]["style"])
    many = report.loss_figure(expansion.runs, records, legend_max=2)
    assert not many.legends and "run" in many.axes[-1].get_ylabel()  # the colour bar instead
