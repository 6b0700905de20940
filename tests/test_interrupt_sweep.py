"""Interrupted sweeps keep their work (tiny random VGG): a batch in flight resumes from its last
save and ends exactly as an uninterrupted sweep; an interruption writes the reports of what is
finished; a failed write keeps the computed images and a rerun completes them."""

import errno
import json
import tempfile

import numpy as np
import pytest
from PIL import Image

from nstjax import atomic, image
from nstjax.errors import NstjaxError
from nstjax.sweep import RunSettings, default_config, inflight, prepare, recorder, run_sweep

STEPS = 8
ONE_DEVICE_BY_4 = RunSettings(mesh=None, batch_size=4)


def config_for(optimizer: str, steps: int = STEPS, every: int = 2):
    """Four runs (the shipped example pair, two style weights x two seeds from noise) in one
    batch, saved every ``every`` steps, progress every 2."""
    config = default_config()
    config.data.size = 16
    config.loss.content_layers = ["conv2_1"]
    config.loss.style_layers = ["conv1_1", "conv2_1"]
    config.loss.tv_weight = 1e-3
    config.init = "noise"
    config.optim.optimizer = optimizer
    config.optim.steps = steps
    config.optim.lbfgs_history = 3
    config.sweep.axes.style_weight = [10.0, 1000.0]
    config.sweep.axes.seed = [0, 1]
    config.sweep.chunk = 2
    config.sweep.checkpoint_every = every
    config.sweep.checkpoint_minutes = 0.0
    return config


def run(config, workdir, params, log=None):
    log = log if log is not None else (lambda _: None)
    return run_sweep(prepare(config), str(workdir), params, ONE_DEVICE_BY_4, log=log)


def records(workdir):
    return {p.parent.name: json.loads(p.read_text()) for p in workdir.glob("runs/*/run.json")}


def pixels(workdir, run_id):
    return np.asarray(Image.open(workdir / "runs" / run_id / "image.png"))


def assert_same_sweep(a, b):
    """Every run's image, final losses and whole loss history are equal (exactly)."""
    ra, rb = records(a), records(b)
    assert sorted(ra) == sorted(rb) == ["0000", "0001", "0002", "0003"]
    for run_id in ra:
        np.testing.assert_array_equal(pixels(a, run_id), pixels(b, run_id))
        assert ra[run_id]["history"] == rb[run_id]["history"], run_id
        assert ra[run_id]["final"] == rb[run_id]["final"], run_id
        assert ra[run_id]["evaluations"] == rb[run_id]["evaluations"], run_id


@pytest.fixture(scope="module")
def uninterrupted(tiny_params, tmp_path_factory):
    out = {}
    for optimizer in ("adam", "lbfgs_wolfe"):
        workdir = tmp_path_factory.mktemp(f"whole-{optimizer}")
        run(config_for(optimizer), workdir, tiny_params)
        out[optimizer] = workdir
    return out


def stop_at(monkeypatch, step: int):
    """Raises KeyboardInterrupt when the batch has done ``step`` steps, before it is saved."""
    chunk_done = recorder.Recorder.chunk_done

    def stopping(self, batch, steps, metrics, images):
        chunk_done(self, batch, steps, metrics, images)
        if steps == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(recorder.Recorder, "chunk_done", stopping)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs_wolfe"])
def test_a_stopped_batch_resumes_from_its_last_save(
    optimizer, tiny_params, uninterrupted, tmp_path, monkeypatch
):
    config = config_for(optimizer)
    with monkeypatch.context() as patch:
        stop_at(patch, 6)  # saved at 2 and 4; steps 5 and 6 are lost
        with pytest.raises(KeyboardInterrupt) as stopped:
            run(config, tmp_path, tiny_params)
    (note,) = stopped.value.__notes__
    assert "0/4 finished, reports written" in note
    assert "saved at step 4 of 8" in note
    assert (tmp_path / "summary.csv").exists()  # the reports of what is finished (nothing)
    assert records(tmp_path) == {}
    (saved,) = inflight.saved_batches(tmp_path / "inflight")
    assert saved == (["0000", "0001", "0002", "0003"], 4)

    lines = []
    outcome = run(config, tmp_path, tiny_params, lines.append)
    assert outcome.computed == ["0000", "0001", "0002", "0003"]
    assert any("resumes at step 4" in line for line in lines), lines
    assert not (tmp_path / "inflight").exists() or not any((tmp_path / "inflight").iterdir())
    assert_same_sweep(tmp_path, uninterrupted[optimizer])


def test_an_interruption_just_after_a_save_reports_that_save(tiny_params, tmp_path, monkeypatch):
    """Ctrl-C landing once orbax has renamed the save into place but before the save returns
    (the race CI once hit): the note names the save on disk, which a rerun resumes from."""
    save = inflight.Checkpoints.save

    def interrupted(self, batch, progress):
        save(self, batch, progress)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(inflight.Checkpoints, "save", interrupted)
        with pytest.raises(KeyboardInterrupt) as stopped:
            run(config_for("adam"), tmp_path, tiny_params)
    (note,) = stopped.value.__notes__
    assert "saved at step 2 of 8" in note, note
    lines = []
    run(config_for("adam"), tmp_path, tiny_params, lines.append)
    assert any("resumes at step 2" in line for line in lines), lines


def test_a_save_for_other_runs_is_not_resumed(tiny_params, uninterrupted, tmp_path, monkeypatch):
    config = config_for("adam")
    with monkeypatch.context() as patch:
        stop_at(patch, 6)
        with pytest.raises(KeyboardInterrupt):
            run(config, tmp_path, tiny_params)
    (folder,) = (tmp_path / "inflight").iterdir()
    record = json.loads((folder / "batch.json").read_text())
    (folder / "batch.json").write_text(json.dumps({**record, "ids": record["ids"][::-1]}))
    lines = []
    run(config, tmp_path, tiny_params, lines.append)
    assert any("saved for other runs" in line for line in lines), lines
    assert_same_sweep(tmp_path, uninterrupted["adam"])


def no_space_for(monkeypatch, should_fail):
    """The atomic writer raises ENOSPC for the paths ``should_fail`` accepts."""
    atomic_path = atomic.atomic_path

    def full(path):
        if should_fail(str(path)):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return atomic_path(path)

    monkeypatch.setattr(atomic, "atomic_path", full)
    monkeypatch.setattr(image, "atomic_path", full)


def test_failed_writes_are_kept_and_a_rerun_writes_them(
    tiny_params, uninterrupted, tmp_path, monkeypatch, capsys
):
    config = config_for("adam")
    failing = ("runs/0001/image.png", "runs/0003/run.json")
    with monkeypatch.context() as patch:
        no_space_for(patch, lambda p: p.endswith(failing))
        with pytest.raises(NstjaxError, match="2 file.* could not be written") as error:
            run(config, tmp_path, tiny_params)
    assert "a rerun writes them" in str(error.value)
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if "run 000" in line] == [
        f"nstjax: sweep: run 0001: image '{tmp_path}/runs/0001/image.png': cannot write "
        "(No space left on device)",
        f"nstjax: sweep: run 0003: '{tmp_path}/runs/0003/run.json': cannot write "
        "(No space left on device)",
    ]
    assert sorted(records(tmp_path)) == ["0000", "0002"]

    lines = []
    outcome = run(config, tmp_path, tiny_params, lines.append)
    assert outcome.computed == ["0001", "0003"]
    assert any(f"resumes at step {STEPS}" in line for line in lines), lines  # nothing recomputed
    assert_same_sweep(tmp_path, uninterrupted["adam"])


def test_when_nothing_can_be_saved_the_images_go_elsewhere(
    tiny_params, uninterrupted, tmp_path, monkeypatch
):
    config = config_for("adam")
    work, rescue = tmp_path / "work", tmp_path / "elsewhere"
    monkeypatch.setattr(tempfile, "tempdir", str(rescue))
    with monkeypatch.context() as patch:
        no_space_for(patch, lambda p: p.startswith(str(work / "runs")))

        def full(self, batch, progress):
            raise OSError(errno.ENOSPC, "No space left on device")

        patch.setattr(inflight.Checkpoints, "save", full)
        with pytest.raises(NstjaxError, match="4 file.* could not be written") as error:
            run(config, work, tiny_params)
    folder = rescue / "nstjax-unwritten-work"
    assert f"their images are in {folder}" in str(error.value)
    for run_id in ("0000", "0001", "0002", "0003"):
        np.testing.assert_array_equal(
            np.asarray(Image.open(folder / f"{run_id}.png")),
            pixels(uninterrupted["adam"], run_id),
        )
    run(config, work, tiny_params)  # computes them again
    assert_same_sweep(work, uninterrupted["adam"])


def test_stylize_keeps_an_image_it_cannot_write(tiny_params, tmp_path, monkeypatch, capsys):
    from nstjax import examples, vgg
    from nstjax.cli import main

    monkeypatch.setattr(vgg, "load_params", lambda path=None: tiny_params)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    args = ["stylize", "--content", str(examples.CONTENT), "--style", str(examples.STYLE)]
    args += [str(examples.CONTENT), "--size", "24", "--steps", "3", "--content-layers", "conv2_1"]
    args += ["--style-layers", "conv1_1,conv2_1"]
    assert main([*args, "--output", str(tmp_path / "whole")]) == 0
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        no_space_for(patch, lambda p: p.endswith("__chelsea.png") and str(out) in p)
        assert main([*args, "--output", str(out)]) == 1
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "cannot write" in x]
    rescued = tmp_path / "tmp" / "nstjax-unwritten" / "chelsea__chelsea.png"
    assert line == (
        f"nstjax: output image '{out}/chelsea__chelsea.png': cannot write (No space left on "
        f"device); kept as {rescued} instead"
    )
    assert sorted(p.name for p in out.iterdir()) == ["chelsea__starry_night.png"]
    for name, path in (("chelsea__chelsea.png", rescued), ("chelsea__starry_night.png", None)):
        written = np.asarray(Image.open(path or out / name))
        np.testing.assert_array_equal(written, np.asarray(Image.open(tmp_path / "whole" / name)))


def test_saves_of_written_batches_are_removed(tmp_path):
    """A process stopped between writing a batch's last run and removing its save."""
    for ids in (["0000", "0001"], ["0002", "0003"]):
        folder = tmp_path / inflight.batch_name(ids, 2)
        (folder / "state" / "6").mkdir(parents=True)
        (folder / "batch.json").write_text(json.dumps({"ids": ids, "size": 2}))
    (tmp_path / "stray").mkdir()  # not a save: left alone
    assert len(inflight.saved_batches(tmp_path)) == 2
    inflight.remove_finished(tmp_path, {"0000", "0001", "0002"})
    assert inflight.saved_batches(tmp_path) == [(["0002", "0003"], 2)]
    assert (tmp_path / "stray").is_dir()
