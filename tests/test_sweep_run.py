"""Running a sweep into a workdir (tiny random VGG): files, results, resume, refusal, failures."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image
from sweep_records import STEPS, small_config

from nstjax import api
from nstjax.errors import NstjaxError
from nstjax.image import load_image
from nstjax.sweep import RunSettings, prepare, run_sweep


def run(config, workdir, params, **settings):
    settings = RunSettings(**{"batch_size": 3, "mesh": None, **settings})
    return run_sweep(prepare(config), str(workdir), params, settings, log=lambda _: None)


@pytest.fixture(scope="module")
def finished(tiny_params, images_dir, tmp_path_factory):
    """One sweep of 4 runs in batches of 3 (the second padded), run to the end."""
    workdir = tmp_path_factory.mktemp("sweep")
    outcome = run(small_config(images_dir), workdir, tiny_params)
    return workdir, outcome


def test_workdir_layout(finished):
    workdir, outcome = finished
    assert (outcome.total, outcome.done, outcome.failed, outcome.pending) == (4, 4, 0, 0)
    assert outcome.batch_sizes == [3, 3]
    assert sorted(p.name for p in workdir.iterdir()) == [
        ".lock",
        "config.json",
        "contact_sheet.png",
        "loss_curves.png",
        "manifest.json",
        "report.html",
        "runs",
        "summary.csv",
    ]
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert [r["id"] for r in manifest["runs"]] == ["0000", "0001", "0002", "0003"]
    assert {r["status"] for r in manifest["runs"]} == {"done"}
    assert manifest["counts"] == {"pending": 0, "done": 4, "failed": 0}
    for entry in manifest["runs"]:
        folder = workdir / "runs" / entry["id"]
        assert sorted(p.name for p in folder.iterdir()) == ["image.png", "run.json"]
        record = json.loads((folder / "run.json").read_text())
        assert record["status"] == "done" and record["label"] == entry["label"]
        assert len(record["history"]["loss"]) == STEPS
        assert set(record["final"]) == {"loss", "content", "style", "tv"}
        assert record["wall_s"] > 0
        assert Image.open(folder / "image.png").size == (16, 12)
    with open(workdir / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["axis:style"], r["axis:style_weight"]) for r in rows] == [
        ("starry_night", "10"),
        ("starry_night", "1000"),
        ("great_wave", "10"),
        ("great_wave", "1000"),
    ]
    for name in ("contact_sheet.png", "loss_curves.png"):
        with Image.open(workdir / name) as img:
            assert img.format == "PNG" and min(img.size) > 64


def test_results_match_a_run_done_alone(finished, tiny_params, images_dir):
    """Run 0003 (great_wave, style_weight 1000), recomputed by hand through the API."""
    workdir, _ = finished
    record = json.loads((workdir / "runs" / "0003" / "run.json").read_text())
    content = load_image(images_dir / "tubingen.jpg", 16)
    style = load_image(images_dir / "great_wave.jpg")
    alone = api.Run(
        style_weight=1000.0,
        tv_weight=1e-3,
        content_layers=["conv2_1"],
        style_layers=["conv1_1", "conv2_1"],
        learning_rate=2.0,
    )
    (result,) = api.stylize_batch(tiny_params, [content], [style], [alone], steps=STEPS)
    np.testing.assert_allclose(record["history"]["loss"], result.history[:, 0], rtol=1e-4)
    np.testing.assert_allclose(record["final"]["loss"], result.final["loss"], rtol=1e-4)
    saved = np.asarray(Image.open(workdir / "runs" / "0003" / "image.png"), np.float32) / 255
    np.testing.assert_allclose(saved, result.image, atol=1.01 / 255)


def _mtimes(workdir):
    return {p.parent.name: p.stat().st_mtime_ns for p in workdir.glob("runs/*/run.json")}


def test_resume_runs_only_the_unfinished(tiny_params, images_dir, tmp_path):
    config = small_config(images_dir)
    run(config, tmp_path, tiny_params)
    (tmp_path / "runs" / "0001" / "run.json").unlink()
    (tmp_path / "runs" / "0002" / "run.json").unlink()
    (tmp_path / "runs" / "0002" / "image.png").unlink()
    stale = tmp_path / "runs" / "0002" / ".image.png.x1y2.tmp.png"
    stale.write_bytes(b"half a png")  # what a kill -9 during a write leaves
    before = _mtimes(tmp_path)
    outcome = run(config, tmp_path, tiny_params)
    assert outcome.finished_before == 2
    assert sorted(outcome.computed) == ["0001", "0002"]  # the complement of the finished runs
    after = _mtimes(tmp_path)
    assert {k: after[k] for k in before} == before
    assert not stale.exists()
    assert run(config, tmp_path, tiny_params).computed == []


def test_a_damaged_run_json_counts_as_unfinished(tiny_params, images_dir, tmp_path):
    """An empty or cut-short run.json (what a power loss can leave) is computed again, not read
    as finished and not a traceback."""
    config = small_config(images_dir)
    run(config, tmp_path, tiny_params)
    whole = (tmp_path / "runs" / "0001" / "run.json").read_text()
    (tmp_path / "runs" / "0001" / "run.json").write_text("")
    (tmp_path / "runs" / "0003" / "run.json").write_text(whole[: len(whole) // 2])
    outcome = run(config, tmp_path, tiny_params)
    assert sorted(outcome.computed) == ["0001", "0003"]
    for run_id in ("0001", "0003"):
        record = json.loads((tmp_path / "runs" / run_id / "run.json").read_text())
        assert record["status"] == "done"


def test_a_different_config_is_refused(tiny_params, images_dir, tmp_path):
    config = small_config(images_dir)
    run(config, tmp_path, tiny_params)
    before = _mtimes(tmp_path)
    changed = small_config(images_dir)
    changed.sweep.axes.style_weight = [10.0, 100.0]
    with pytest.raises(NstjaxError, match=r"different sweep \(sweep\.axes\.style_weight"):
        run(changed, tmp_path, tiny_params)
    assert _mtimes(tmp_path) == before
    # fields that only change the report are not a different sweep
    shown = small_config(images_dir)
    shown.sweep.contact_sheet.rows = "style_weight"
    assert run(shown, tmp_path, tiny_params).computed == []
    outcome = run(changed, tmp_path, tiny_params, overwrite=True)
    assert len(outcome.computed) == 4
    record = json.loads((tmp_path / "runs" / "0001" / "run.json").read_text())
    assert record["hyperparameters"]["style_weight"] == 100.0


def test_a_folder_that_is_not_a_sweep_is_refused(tiny_params, images_dir, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NstjaxError, match="not a sweep folder"):
        run(small_config(images_dir), tmp_path, tiny_params, overwrite=True)
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_a_diverging_run_is_recorded_as_failed(tiny_params, images_dir, tmp_path):
    config = small_config(images_dir)
    config.sweep.axes.style_weight = [10.0, 1e38]  # the loss overflows to inf
    outcome = run(config, tmp_path, tiny_params)
    assert (outcome.done, outcome.failed) == (2, 2)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    failed = [r["id"] for r in manifest["runs"] if r["status"] == "failed"]
    assert failed == ["0001", "0003"]
    record = json.loads((tmp_path / "runs" / "0001" / "run.json").read_text())
    assert record["failed_at"] == 0
    assert run(config, tmp_path, tiny_params).computed == []  # finished, not retried


def test_snapshots(tiny_params, images_dir, tmp_path):
    config = small_config(images_dir)
    config.data.style = config.data.style[:1]
    config.sweep.save_every = 2
    run(config, tmp_path, tiny_params)
    for run_id in ("0000", "0001"):
        names = sorted(p.name for p in (tmp_path / "runs" / run_id).iterdir())
        assert names == ["image.png", "run.json", "step_00002.png"]  # not the final step


def test_a_snapshot_that_cannot_be_written_does_not_stop_the_sweep(
    tiny_params, images_dir, tmp_path, monkeypatch, capsys
):
    """A disk that refuses an intermediate image costs that image, not the runs: every run
    finishes and is written, and each snapshot not written is one line on stderr."""
    import errno

    from nstjax.sweep.workdir import Workdir

    def disk_full(self, run_id, step, pixels):
        raise OSError(errno.ENOSPC, "No space left on device", f"runs/{run_id}/step_{step:05d}.png")

    monkeypatch.setattr(Workdir, "write_snapshot", disk_full)
    config = small_config(images_dir)
    config.data.style = config.data.style[:1]
    config.sweep.save_every = 2
    outcome = run(config, tmp_path, tiny_params)
    assert sorted(outcome.computed) == ["0000", "0001"]
    assert all((tmp_path / "runs" / i / "run.json").is_file() for i in ("0000", "0001"))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("nstjax: ")]
    assert lines == [
        f"nstjax: sweep: run {i}: snapshot at step 2: 'runs/{i}/step_00002.png': cannot write "
        "(No space left on device)"
        for i in ("0000", "0001")
    ]


def test_reports_that_cannot_be_written_at_the_end_are_one_error_after_the_runs(
    tiny_params, images_dir, tmp_path, monkeypatch
):
    """The runs are on disk; the error says so and how to get the reports (a rerun), rather
    than an OSError's traceback."""
    import errno

    from nstjax.sweep import run as sweep_run

    def disk_full(sweep, work):
        raise OSError(errno.ENOSPC, "No space left on device", str(work.path / "summary.csv"))

    monkeypatch.setattr(sweep_run, "write_reports", disk_full)
    with pytest.raises(NstjaxError, match=r"the runs are written but the reports are not \('.*"
                       r"summary.csv': cannot write \(No space left on device\)\); rerun"):  # fmt: skip
        run(small_config(images_dir), tmp_path, tiny_params)
    assert len(list(tmp_path.glob("runs/*/run.json"))) == 4
