"""TensorBoard logs read back from their event files (TFRecord framing parsed here, the protos of
tensorboardX) and compared with the run records they were written from."""

import io

import numpy as np
import pytest
from PIL import Image
from sweep_records import QUALITY, f32, logged, synthetic

pytest.importorskip("tensorboardX")


from nstjax.engine import METRICS  # noqa: E402
from nstjax.errors import NstjaxError  # noqa: E402
from nstjax.sweep import tensorboard  # noqa: E402


def check_run_logs(folder, run, record, image_file, measures):
    """The run's logs hold its history, final image, hyperparameters and metrics."""
    scalars, images, hparams = logged(folder)
    for term, tag in tensorboard.TERM_TAGS.items():
        history = record["history"][term]
        expected = {i: f32(v) for i, v in enumerate(history) if v is not None}
        assert scalars[tag] == pytest.approx(expected, rel=0, abs=0, nan_ok=True), tag
    steps = len(record["history"]["loss"])
    for name in measures:
        value = (record.get("quality") or {}).get(name)
        want = {} if value is None else {steps: f32(value)}  # a missing value is left out
        assert scalars.get(f"quality/{name}", {}) == want
    for term in METRICS:
        assert scalars[f"final/{term}"][steps] == f32(record["final"][term])
    png = np.asarray(Image.open(io.BytesIO(images[tensorboard.IMAGE_TAG])).convert("RGB"))
    np.testing.assert_array_equal(png, np.asarray(Image.open(image_file).convert("RGB")))
    for name, value in run.values.items():
        if isinstance(value, bool) or isinstance(value, str):
            assert hparams[name] == value, name
        elif isinstance(value, (int, float)):
            assert hparams[name] == float(value), name
        elif isinstance(value, list):
            assert hparams[name] == "+".join(value), name
    assert hparams["content"] == "tubingen"


def test_logs_hold_the_records(tmp_path):
    expansion, records = synthetic(tmp_path)
    del records["0001"]["quality"]["global_effects"]  # a run without one of the measures
    logdir = tmp_path / "tensorboard"
    image = lambda run: tmp_path / "runs" / run.id / "image.png"
    written = tensorboard.write_tensorboard(logdir, expansion.runs, records, image, list(QUALITY))
    assert written == sorted(records)  # finished runs only, pending ones later
    folders = sorted(p.name for p in logdir.iterdir())
    assert folders == [tensorboard.folder_name(r) for r in expansion.runs if r.id in records]
    assert folders[0] == "0000_style_weight=0.5,_style_layers=conv1_1"
    for run in expansion.runs:
        if run.id in records:
            folder = logdir / tensorboard.folder_name(run)
            check_run_logs(folder, run, records[run.id], image(run), QUALITY)


def test_only_new_runs_are_written_and_partial_folders_go(tmp_path):
    expansion, records = synthetic(tmp_path)
    logdir = tmp_path / "tensorboard"
    image = lambda run: tmp_path / "runs" / run.id / "image.png"
    first = {k: v for k, v in records.items() if k in ("0000", "0001")}
    assert tensorboard.write_tensorboard(logdir, expansion.runs, first, image) == [
        "0000",
        "0001",
    ]
    before = {p.relative_to(logdir): p.stat().st_mtime_ns for p in logdir.rglob("*")}
    (logdir / ".partial-0002_x").mkdir()  # what a killed writer leaves
    assert tensorboard.write_tensorboard(logdir, expansion.runs, records, image) == [
        "0002",
        "0003",
    ]
    after = {p.relative_to(logdir): p.stat().st_mtime_ns for p in logdir.rglob("*")}
    assert {k: after[k] for k in before} == before
    assert not (logdir / ".partial-0002_x").exists()


def test_require_names_the_package(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_tensorboardx(name, *args, **kwargs):
        if name == "tensorboardX":
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboardx)
    with pytest.raises(NstjaxError, match=r"sweep.tensorboard=True needs the tensorboardX"):
        tensorboard.require()
