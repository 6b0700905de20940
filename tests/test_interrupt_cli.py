"""Interrupting the commands, in subprocesses (tiny random VGG): Ctrl-C (SIGINT) and SIGTERM keep
the work with exit 130/143 and one line saying what was kept; ``kill -9`` in the middle of a batch
loses at most one save interval, and the resumed sweep ends exactly as an uninterrupted one."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstjax import examples
from nstjax.config import load_config
from nstjax.sweep import RunSettings, prepare, run_sweep

ONE_DEVICE_BY_4 = RunSettings(mesh=None, batch_size=4)

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # the CLI in subprocesses, signalled and killed with kill -9

DRIVER = textwrap.dedent(
    """
    import signal, sys
    # A shell that starts pytest in the background ignores SIGINT, and this child inherits that;
    # Python installs its Ctrl-C handler only where SIGINT was not ignored, so install it here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import jax
    from nstjax import vgg
    vgg.load_params = lambda path=None: vgg.init_params(jax.random.key(0))
    from nstjax.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)

PRINTING = textwrap.dedent(
    """
    import sys
    import jax
    from nstjax import vgg
    from nstjax.config import load_config
    from nstjax.sweep import RunSettings, prepare, recorder, run_sweep

    chunk_done = recorder.Recorder.chunk_done
    def printing(self, batch, steps, metrics, images):
        chunk_done(self, batch, steps, metrics, images)
        print("step", steps, flush=True)
    recorder.Recorder.chunk_done = printing
    sweep = prepare(load_config(sys.argv[1]))
    settings = RunSettings(mesh=None, batch_size=4)
    run_sweep(sweep, sys.argv[2], vgg.init_params(jax.random.key(0)), settings)
    """
)


def cli(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, *map(str, args)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(proc, ready, what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{what} did not happen in time"
        time.sleep(0.02)


def write_config(path: Path, steps: int, every: int) -> Path:
    """Four runs of the shipped example pair (two style weights x two seeds) in one batch."""
    path.write_text(
        textwrap.dedent(
            f"""
            from nstjax.sweep import default_config

            def get_config(arg=None):
                config = default_config()
                config.data.size = 16
                config.loss.content_layers = ["conv2_1"]
                config.loss.style_layers = ["conv1_1", "conv2_1"]
                config.init = "noise"
                config.optim.steps = {steps}
                config.sweep.axes.style_weight = [10.0, 1000.0]
                config.sweep.axes.seed = [0, 1]
                config.sweep.chunk = 2
                config.sweep.checkpoint_every = {every}
                config.sweep.checkpoint_minutes = 0.0
                return config
            """
        )
    )
    return path


def saved_steps(workdir: Path) -> list[int]:
    return [int(p.name) for p in workdir.glob("inflight/*/state/*") if p.name.isdigit()]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_sweep_writes_its_reports_and_says_what_it_kept(sig, tmp_path):
    config, workdir = write_config(tmp_path / "sweep.py", 4000, 10), tmp_path / "work"
    proc = cli("sweep", "--config", config, "--workdir", workdir, "--batch-size", 4)
    wait_for(proc, lambda: saved_steps(workdir), "a save of the batch in flight")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    last = err.strip().splitlines()[-1]
    name = signal.Signals(sig).name
    assert last.startswith(f"nstjax: interrupted by {name}; sweep: 0 run(s) written this time")
    assert f"0/4 finished, reports written to {workdir}" in last
    assert "the batch in flight (4 runs) was saved at step" in last
    assert "done in" not in err and "stopped after" in err
    assert (workdir / "summary.csv").exists() and (workdir / "manifest.json").exists()
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["counts"] == {"pending": 4, "done": 0, "failed": 0}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_stylize_keeps_each_runs_current_image(sig, tmp_path):
    out = tmp_path / "out"
    args = ["--content", examples.CONTENT, "--style", examples.STYLE, examples.CONTENT]
    args += ["--output", out, "--size", 24, "--steps", 5000, "--save-every", 5]
    args += ["--content-layers", "conv2_1", "--style-layers", "conv1_1,conv2_1"]
    proc = cli("stylize", *args)
    wait_for(proc, lambda: len(list(out.glob("*_00010.png"))) == 2, "the snapshots at step 10")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    kept = sorted(out.glob("*.interrupted-step*.png"))
    assert len(kept) == 2, sorted(out.iterdir())
    last = err.strip().splitlines()[-1]
    name = signal.Signals(sig).name
    assert last in [
        f"nstjax: interrupted by {name}; stylize: 0 finished image(s) written; the current "
        f"image of 2 unfinished run(s) saved as {path} and 1 more"
        for path in kept
    ]
    for path in kept:  # the image of its step: the snapshot of that step, when it was written
        stem, step = path.name.split(".interrupted-step")
        step = int(step.removesuffix(".png"))
        assert step % 5 == 0 and step >= 10
        assert not (out / f"{stem}.png").exists()
        snapshot = out / f"{stem}_{step:05d}.png"
        if snapshot.exists():
            np.testing.assert_array_equal(np.asarray(Image.open(path)), Image.open(snapshot))


def records(workdir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in workdir.glob("runs/*/run.json")}


def test_kill_9_mid_batch_loses_at_most_one_save_interval(tiny_params, tmp_path):
    steps, every = 60, 10
    config = write_config(tmp_path / "sweep.py", steps, every)
    workdir = tmp_path / "work"
    proc = subprocess.Popen(
        [sys.executable, "-c", PRINTING, config, workdir],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    seed = random.randrange(2**31)
    target = random.Random(seed).randrange(every + 2, steps - 2, 2)  # a random moment
    seen = 0
    for line in proc.stdout:
        seen = int(line.split()[1])
        if seen >= target:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert seen >= target, "the sweep ended before the kill"
    assert records(workdir) == {}, "the batch finished before the kill: make it longer"

    lines = []
    sweep = prepare(load_config(str(config)))
    run_sweep(sweep, str(workdir), tiny_params, ONE_DEVICE_BY_4, log=lines.append)
    (resumed,) = [int(line.split()[-1]) for line in lines if "resumes at step" in line]
    print(
        f"kill -9 (seed {seed}) after step {seen} was reported: resumed at step {resumed}, "
        f"{seen - resumed} step(s) at least redone; save interval {every} steps"
    )
    assert resumed % every == 0 and seen - every <= resumed <= steps

    whole = tmp_path / "whole"
    run_sweep(sweep, str(whole), tiny_params, ONE_DEVICE_BY_4, log=lambda _: None)
    a, b = records(workdir), records(whole)
    assert sorted(a) == sorted(b) == ["0000", "0001", "0002", "0003"]
    for run_id in a:
        assert a[run_id]["history"] == b[run_id]["history"]
        assert a[run_id]["final"] == b[run_id]["final"]
        np.testing.assert_array_equal(
            np.asarray(Image.open(workdir / "runs" / run_id / "image.png")),
            np.asarray(Image.open(whole / "runs" / run_id / "image.png")),
        )
