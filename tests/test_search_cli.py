"""``nstjax sweep`` running a search, in subprocesses: ``kill -9`` and resume without repeating or
losing a trial, and two processes sharing one study through one storage.

The subprocesses run the real CLI with the tiny random VGG and a measure the driver computes,
``dist`` (mean squared difference to the content, lower is better), slowed by ``$SLOW`` seconds
per measurement so that a generation is surely under way when the test kills the process.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # several processes running the CLI, kill -9
DRIVER = textwrap.dedent(
    """
    import os, sys, time
    import jax
    import numpy as np
    from nstjax import vgg
    vgg.load_params = lambda path=None: vgg.init_params(jax.random.key(0))
    from nstjax.sweep import search, search_space
    search_space.quality_directions = lambda: {"dist": "min"}

    def quality_scorer(params, convolution="xla"):
        def scorer(outputs, contents, styles, names):
            time.sleep(float(os.environ.get("SLOW", "0")))
            return {"dist": np.mean((outputs - contents) ** 2, axis=(1, 2, 3))}
        return scorer

    search.quality_scorer = quality_scorer
    from nstjax.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def write_config(path: Path, images_dir: Path, storage: str, trials: int) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""
            from nstjax.sweep import default_config

            def get_config(arg=None):
                config = default_config()
                config.data.content = [{str(images_dir / "tubingen.jpg")!r}]
                config.data.style = [{str(images_dir / "starry_night.jpg")!r}]
                config.data.size = 40  # the style at 25x40: the measures' 24 px
                config.loss.content_layers = ["conv2_1"]
                config.loss.style_layers = ["conv1_1", "conv2_1"]
                config.optim.steps = 3
                config.optim.learning_rate = 2.0
                config.search.trials = {trials}
                config.search.generation = 2
                config.search.sampler = "random"
                config.search.space.style_weight = [1.0, 1e4, "log"]
                config.search.space.tv_weight = [1e-3, 1.0, "log"]
                config.search.objective.weights.dist = 1.0
                config.search.storage = {storage!r}
                return config
            """
        )
    )
    return path


def cli(config: Path, workdir: Path, slow: float) -> subprocess.Popen:
    args = ["sweep", "--config", str(config), "--workdir", str(workdir)]
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, *args],
        cwd=REPO,
        env=dict(os.environ, SLOW=str(slow)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    return out


def trials_of(storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="search", storage=storage).get_trials()


def params_key(trial) -> tuple:
    return tuple(sorted(trial.params.items()))


def test_kill_9_then_resume_repeats_and_loses_no_trial(images_dir, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    config = write_config(tmp_path / "search.py", images_dir, storage, trials=8)
    proc = cli(config, tmp_path / "work", slow=1.0)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # a generation told, the next one running
        time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        try:
            seen = trials_of(storage)
        except Exception:  # the study does not exist yet
            continue
        running = [t for t in seen if t.state == TrialState.RUNNING and t.params]  # sampled
        if sum(t.state == TrialState.COMPLETE for t in seen) >= 2 and running:
            break
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed = trials_of(storage)
    orphans = [t for t in killed if t.state == TrialState.RUNNING]
    done_before = {t.number: params_key(t) for t in killed if t.state == TrialState.COMPLETE}
    assert orphans and done_before

    out = finish(cli(config, tmp_path / "work", slow=0.0))
    trials = trials_of(storage)
    by_number = {t.number: t for t in trials}
    failed = [t for t in trials if t.state == TrialState.FAIL]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # every orphan failed, and retried once with its parameters (an orphan killed after it was
    # created and before it was sampled has none: its retry samples them)
    assert sorted(t.number for t in failed) == sorted(t.number for t in orphans)
    assert any(orphan.params for orphan in orphans)  # a generation was killed while it ran
    for orphan in orphans:
        retries = [t for t in trials if t.user_attrs.get("retry_of") == orphan.number]
        assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
        if orphan.params:
            assert params_key(retries[0]) == params_key(orphan)
    # the requested number of trials, none repeated, those told before the kill untouched
    assert len(complete) == 8 and len(trials) == 8 + len(orphans)
    assert len({params_key(t) for t in complete}) == 8
    for number, key in done_before.items():
        assert (
            by_number[number].state == TrialState.COMPLETE and params_key(by_number[number]) == key
        )
    assert "the study holds 8 of 8" in out


def test_two_processes_share_one_study(images_dir, tmp_path):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    config = write_config(tmp_path / "search.py", images_dir, storage, trials=10)
    optuna.create_study(study_name="search", storage=storage, direction="maximize")
    procs = [cli(config, tmp_path / f"work{i}", slow=1.0) for i in range(2)]
    outs = [finish(p) for p in procs]
    trials = trials_of(storage)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    others = [t for t in trials if t.state != TrialState.COMPLETE]
    # together the requested number; an overshoot is told FAIL as surplus, never run
    assert len(complete) == 10
    assert all(t.state == TrialState.FAIL and t.user_attrs.get("surplus") for t in others)
    assert len({params_key(t) for t in complete}) == 10
    owners = {t.user_attrs["owner"]["pid"] for t in complete}
    assert owners == {p.pid for p in procs}  # both took part
    assert all("the study holds 10 of 10" in out for out in outs)
    ran = sum(
        len(list((tmp_path / f"work{i}" / "search" / "trials").glob("*.png"))) for i in (0, 1)
    )
    assert ran == 10


def test_quick_search_with_the_real_weights(real_weights, tmp_path):
    """configs/search_style.py:quick end to end: the real VGG, the quality measures, TPE."""
    proc = subprocess.run(
        [sys.executable, "-m", "nstjax", "sweep", "--config", "configs/search_style.py:quick",
         "--workdir", str(tmp_path), "--weights", str(real_weights)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    history = json.loads((tmp_path / "search" / "trials.json").read_text())
    assert len(history) == 4 and {e["state"] for e in history} <= {"complete", "pruned"}
    weights = {"content_fidelity", "global_effects", "local_patterns"}
    for e in history:
        assert set(e["measures"]) == weights
        # the objective of a complete trial is the sum of its three measures (all in [0, 1])
        assert all(0.0 <= e["measures"][m] <= 1.0 for m in weights)
        if e["state"] == "complete":
            assert e["objective"] == pytest.approx(sum(e["measures"].values()), rel=1e-12)
        assert (tmp_path / "search" / e["image"]).is_file()
    best = max((e for e in history if e["state"] == "complete"), key=lambda e: e["objective"])
    assert f"best trial {best['trial']}:" in proc.stdout
