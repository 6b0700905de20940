"""report.html in a real browser (headless Chromium): a row per run, sorting by a header's clicks
as Python sorts the records, filtering, no console messages; on synthetic records and on a tiny
sweep interrupted after its first batch, then resumed (the report, summary and TensorBoard logs
rewritten batch by batch)."""

import csv
import html.parser
import json
import math
import shutil
import subprocess

import pytest
from sweep_records import QUALITY, f32, logged, small_config, synthetic

from nstjax import quality
from nstjax.sweep import RunSettings, prepare, recorder, run_sweep, trials
from nstjax.sweep import html as report_html
from nstjax.sweep.expand import Expansion

pytestmark = pytest.mark.slow  # a headless browser in its own process

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (.ci/run installs the Debian package)"
)


class _Rows(html.parser.HTMLParser):
    """The runs table's rows (id, status, hidden) in document order, and the headers' sort."""

    def __init__(self):
        super().__init__()
        self.rows, self.sorted = [], {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-id" in attrs:
            self.rows.append((attrs["data-id"], attrs["data-status"], "hidden" in attrs))
        if tag == "th" and "data-key" in attrs:
            self.sorted[attrs["data-key"]] = attrs.get("aria-sort")


def open_page(page, fragment, tmp_path):
    """Loads ``page#fragment`` in headless Chromium; returns the table's rows, the headers'
    sort states and the console's messages (Chromium logs every console message and uncaught
    error to stderr as ``...:CONSOLE...``)."""
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    url = page.resolve().as_uri() + ("#" + fragment if fragment else "")
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=3000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    parser = _Rows()
    parser.feed(done.stdout)
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return parser.rows, parser.sorted, console


def expected_order(ids, values, descending):
    """The documented sort: numbers numerically and before text, text by code point, missing
    values last either way, ties in sweep order."""

    def key(value):
        if value is None or value == "":
            return None
        if isinstance(value, (int, float)):
            return (0, value, "")
        try:
            return (0, float(value), "")
        except ValueError:
            return (1, 0.0, value)

    present = [(key(v), i) for i, v in zip(ids, values) if key(v) is not None]
    missing = [i for i, v in zip(ids, values) if key(v) is None]
    ranked = sorted(present, key=lambda p: p[0], reverse=descending)
    return [i for _, i in ranked] + missing


@pytest.fixture
def synthetic_page(tmp_path):
    expansion, records = synthetic(tmp_path)
    search = trials.SearchHistory(
        "content_fidelity",
        "maximize",
        [trials.Trial(i, v, {"style_weight": w}, f"{i:04d}") for i, (v, w) in
         enumerate([(0.3, 0.5), (None, 30.0), (0.7, 1000.0), (0.5, 0.5)])],
    )  # fmt: skip
    page = tmp_path / "report.html"
    image = lambda run: tmp_path / "runs" / run.id / "image.png"
    report_html.write_html(page, expansion, records, QUALITY, image, search)
    return page, expansion, records


@needs_chromium
def test_a_row_per_run_and_a_quiet_console(synthetic_page, tmp_path):
    page, expansion, records = synthetic_page
    rows, sorted_, console = open_page(page, "", tmp_path)
    assert console == []
    assert [r[0] for r in rows] == [r.id for r in expansion.runs]
    statuses = [(records.get(r.id) or {}).get("status", "pending") for r in expansion.runs]
    assert [r[1] for r in rows] == statuses
    assert set(sorted_.values()) == {None}  # nothing sorted yet


@needs_chromium
@pytest.mark.parametrize(
    "column, descending",
    [
        ("quality:global_effects", False),
        ("quality:style_distance", True),  # pending runs stay last
        ("axis:style_weight", False),  # labels "0.5", "30", "1000": numerically, not as text
        ("axis:style_layers", True),
        ("status", False),
    ],
)
def test_sorting_by_a_header(synthetic_page, tmp_path, column, descending):
    page, expansion, records = synthetic_page
    fragment = "sort=" + ("-" if descending else "") + column
    rows, sorted_, console = open_page(page, fragment, tmp_path)
    assert console == []
    kind, _, name = column.partition(":")
    ids = [r.id for r in expansion.runs]
    if kind == "quality":
        values = [((records.get(i) or {}).get("quality") or {}).get(name) for i in ids]
    elif kind == "axis":
        values = [r.coords[name] for r in expansion.runs]
    else:
        values = [(records.get(i) or {}).get("status", "pending") for i in ids]
    assert [r[0] for r in rows] == expected_order(ids, values, descending)
    assert sorted_[column] == ("descending" if descending else "ascending")


@needs_chromium
def test_filtering(synthetic_page, tmp_path):
    page, expansion, _ = synthetic_page
    rows, _, console = open_page(page, "filter=conv2_1%20PENDING", tmp_path)
    assert console == []
    shown = [i for i, _, hidden in rows if not hidden]
    # words all present, case-insensitive: runs with conv2_1 that are pending (0005 only)
    assert shown == ["0005"]


def _interrupt_after_first_batch(monkeypatch):
    """The sweep stops (as on Ctrl-C) once its first batch is recorded."""
    finished = recorder.Recorder.batch_finished

    def then_stop(self, batch, results):
        finished(self, batch, results)
        raise KeyboardInterrupt

    monkeypatch.setattr(recorder.Recorder, "batch_finished", then_stop)


def _statuses(workdir):
    with open(workdir / "summary.csv") as f:
        return {row["id"]: row["status"] for row in csv.DictReader(f)}


def test_a_sweep_interrupted_half_way_then_resumed(tiny_params, images_dir, tmp_path, monkeypatch):
    config = small_config(images_dir)
    config.data.size = 48  # the measures need 24 px a side (the styles resized to 48 px too)
    config.sweep.tensorboard = True
    workdir = tmp_path / "sweep"
    settings = RunSettings(mesh=None, batch_size=2)
    with monkeypatch.context() as patch:
        _interrupt_after_first_batch(patch)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(prepare(config), str(workdir), tiny_params, settings, log=lambda _: None)
    # the reports were written after the first batch: two runs done, two pending
    assert _statuses(workdir) == {
        "0000": "done",
        "0001": "done",
        "0002": "pending",
        "0003": "pending",
    }
    assert len(list((workdir / "tensorboard").iterdir())) == 2
    page = workdir / "report.html"
    data = json.loads(page.read_text().split('id="data">', 1)[1].split("</script>", 1)[0])
    assert data["counts"] == {"done": 2, "failed": 0, "pending": 2}
    if CHROMIUM:
        rows, _, console = open_page(page, "sort=-final:loss", tmp_path)
        assert console == []
        finals = {i: json.loads((workdir / "runs" / i / "run.json").read_text())["final"]["loss"]
                  for i in ("0000", "0001")}  # fmt: skip
        first_two = sorted(finals, key=finals.get, reverse=True)
        assert [r[0] for r in rows] == [*first_two, "0002", "0003"]
        assert [r[1] for r in rows][2:] == ["pending", "pending"]

    outcome = run_sweep(prepare(config), str(workdir), tiny_params, settings, log=lambda _: None)
    assert sorted(outcome.computed) == ["0002", "0003"]
    assert set(_statuses(workdir).values()) == {"done"}
    assert len(list((workdir / "tensorboard").iterdir())) == 4
    check_measures_everywhere(workdir, page)
    if CHROMIUM:
        rows, _, console = open_page(page, "sort=-quality:content_fidelity", tmp_path)
        assert console == [] and [r[1] for r in rows] == ["done"] * 4
        records = {
            i: json.loads((workdir / "runs" / i / "run.json").read_text())
            for i in ("0000", "0001", "0002", "0003")
        }
        ids = sorted(records)
        values = [records[i]["quality"]["content_fidelity"] for i in ids]
        assert [r[0] for r in rows] == expected_order(ids, values, descending=True)


def check_measures_everywhere(workdir, page):
    """Every run's measures in run.json, summary.csv, the page's data and TensorBoard."""
    with open(workdir / "summary.csv") as f:
        rows = {row["id"]: row for row in csv.DictReader(f)}
    data = json.loads(page.read_text().split('id="data">', 1)[1].split("</script>", 1)[0])
    on_page = {r["id"]: r["quality"] for r in data["runs"]}
    for run_id, row in rows.items():
        measures = json.loads((workdir / "runs" / run_id / "run.json").read_text())["quality"]
        assert list(measures) == list(quality.MEASURE_NAMES)
        assert all(math.isfinite(v) for v in measures.values())
        for name, value in measures.items():
            assert float(row[f"quality_{name}"]) == value
            assert on_page[run_id][name] == value
        (folder,) = (workdir / "tensorboard").glob(f"{run_id}_*")
        scalars, _, _ = logged(folder)
        for name, value in measures.items():
            assert list(scalars[f"quality/{name}"].values()) == [f32(value)]


@needs_chromium
def test_a_search_without_runs(tmp_path):
    """A page of a search's history alone: no runs, a row per trial, a quiet console."""
    history = trials.SearchHistory(
        "score", "maximize", [trials.Trial(i, v, {"style_weight": 10.0**i}) for i, v in
                              enumerate([0.2, None, 0.5, 0.4])],
    )  # fmt: skip
    page = tmp_path / "report.html"
    report_html.write_html(page, Expansion([], {}, []), {}, {}, lambda run: None, history)
    profile = tmp_path / "profile"
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         "--enable-logging=stderr", "--v=0", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert [line for line in done.stderr.splitlines() if ":CONSOLE" in line] == []
    assert done.stdout.count("<tr data-trial=") == 4
