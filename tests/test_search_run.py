"""A search run in-process (tiny random VGG, 16 px): each trial runs what its parameters say,
the halving stops the right runs alone, a second generation compiles nothing, and the history.

The measure is one the test computes itself, ``dist``: the mean squared difference between an
output and its content image (lower is better).
"""

import json
import logging

import jax
import numpy as np
import pytest
from PIL import Image

from nstjax import api, image, resample
from nstjax.errors import NstjaxError
from nstjax.run import Run
from nstjax.sweep import default_config, prepare
from nstjax.sweep.search import run_search

MEASURES = {"dist": "min"}
STEPS, PRUNE_AT, LR = 4, 2, 2.0


def dist(outputs, contents):
    return np.mean((np.asarray(outputs, np.float64) - contents) ** 2, axis=(1, 2, 3))


def scorer(outputs, contents, styles, names):
    assert list(names) == ["dist"]
    return {"dist": dist(outputs, contents)}


def search_config(images_dir, trials=8, generation=4):
    config = default_config()
    config.data.content = [str(images_dir / "tubingen.jpg")]
    config.data.style = [str(images_dir / "starry_night.jpg")]
    config.data.size = 16
    config.loss.content_layers = ["conv2_1"]
    config.loss.style_layers = ["conv1_1", "conv2_1"]
    config.optim.steps = STEPS
    config.optim.learning_rate = LR
    config.sweep.chunk = STEPS
    config.search.trials = trials
    config.search.generation = generation
    config.search.sampler = "random"
    config.search.space.style_weight = [1.0, 1e4, "log"]
    config.search.space.style_layers = {"conv1_1": [0.0, 1.0]}
    config.search.objective.weights.dist = 1.0
    config.search.prune.steps = [PRUNE_AT]
    return config


@pytest.fixture(scope="module")
def searched(tiny_params, images_dir, tmp_path_factory):
    """8 trials in 2 generations of 4, halved at step 2; the compile log of the second one."""
    workdir = tmp_path_factory.mktemp("search")
    sweep = prepare(search_config(images_dir), measures=MEASURES)
    events: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            if "Compiling" in record.getMessage():
                events.append("compile")

    handler, logger = Capture(), logging.getLogger("jax")
    logger.addHandler(handler)
    jax.config.update("jax_log_compiles", True)
    try:
        outcome = run_search(
            sweep, str(workdir), tiny_params, scorer=scorer, mesh=None,
            log=lambda line: events.append(line), stream=open("/dev/null", "w"),
        )  # fmt: skip
    finally:
        jax.config.update("jax_log_compiles", False)
        logger.removeHandler(handler)
    history = json.loads((workdir / "search" / "trials.json").read_text())
    return workdir, outcome, history, events


def standalone(params, images_dir, trial_params, steps):
    """The trial's run built by hand from its parameters, alone through the public API."""
    content = resample.resize_long_side(image.load_image(images_dir / "tubingen.jpg"), 16)
    style = image.load_image(images_dir / "starry_night.jpg")
    run = Run(
        content_weight=1.0,
        style_weight=trial_params["style_weight"],
        content_layers=["conv2_1"],
        # the config's two layers weigh 1/2 each; the search sets conv1_1's
        style_layers={"conv1_1": trial_params["style_layers.conv1_1"], "conv2_1": 0.5},
        learning_rate=LR,
    )
    (result,) = api.stylize_batch(params, [content], [style], [run], steps=steps)
    return result.image, content


def saved(workdir, entry):
    return np.asarray(Image.open(workdir / "search" / entry["image"]), np.float64) / 255.0


def test_every_trial_is_told_within_its_ranges(searched):
    _, outcome, history, _ = searched
    assert [e["trial"] for e in history] == list(range(8))
    assert outcome.computed == list(range(8)) and outcome.generations == 2
    assert outcome.counted == 8
    for e in history:
        assert 1.0 <= e["params"]["style_weight"] <= 1e4
        assert 0.0 <= e["params"]["style_layers.conv1_1"] <= 1.0
    states = [e["state"] for e in history]
    # each generation of 4 halved once: 2 pruned, 2 complete
    assert states[:4].count("pruned") == 2 and states[4:].count("pruned") == 2
    assert states.count("complete") == 4


# PNG rounding (0.5/255) plus float32 differences between a batch of 4 and one run
TOL = 0.5 / 255 + 1e-4


def test_a_complete_trial_is_its_parameters_run_to_the_end(searched, tiny_params, images_dir):
    workdir, _, history, _ = searched
    entry = next(e for e in history if e["state"] == "complete")
    expected, content = standalone(tiny_params, images_dir, entry["params"], STEPS)
    np.testing.assert_allclose(saved(workdir, entry), expected, atol=TOL, rtol=0)
    # its objective is minus the measure of its final image
    assert entry["objective"] == pytest.approx(-dist(expected[None], content)[0], abs=2 * TOL)


def test_halving_stops_the_worse_half_alone_at_the_pruning_step(searched, tiny_params, images_dir):
    workdir, _, history, _ = searched
    for generation in (history[:4], history[4:]):
        at_step = {}
        for e in generation:
            img, content = standalone(tiny_params, images_dir, e["params"], PRUNE_AT)
            at_step[e["trial"]] = dist(img[None], content)[0]
            assert e["intermediate"][str(PRUNE_AT)] == pytest.approx(-at_step[e["trial"]])
            if e["state"] == "pruned":  # stopped there: its image is the one at step 2
                assert e["step"] == PRUNE_AT
                np.testing.assert_allclose(saved(workdir, e), img, atol=TOL, rtol=0)
        worst = sorted(at_step, key=at_step.get)[2:]  # dist is lower-is-better
        assert sorted(e["trial"] for e in generation if e["state"] == "pruned") == sorted(worst)


def test_the_second_generation_compiles_nothing(searched):
    *_, events = searched
    first = next(i for i, e in enumerate(events) if e.startswith("search: generation 1"))
    assert "compile" in events[:first]  # the capture works
    assert "search: generation 2" in events[-1]
    assert "compile" not in events[first:]


def test_best_so_far_is_the_running_maximum_of_complete_trials(searched):
    workdir, outcome, history, _ = searched
    importances = json.loads((workdir / "search" / "importances.json").read_text())
    assert set(importances) == {"style_weight", "style_layers.conv1_1"}
    assert sum(importances.values()) == pytest.approx(1.0)
    best = None
    for e in history:
        if e["state"] == "complete":
            best = e["objective"] if best is None else max(best, e["objective"])
        assert e["best_so_far"] == best
    assert outcome.best["objective"] == best


def test_more_trials_extend_the_study_without_repeating(searched, tiny_params, images_dir):
    workdir, _, before, _ = searched
    config = search_config(images_dir, trials=10, generation=4)
    sweep = prepare(config, measures=MEASURES)
    outcome = run_search(sweep, str(workdir), tiny_params, scorer=scorer, mesh=None, log=print)
    history = json.loads((workdir / "search" / "trials.json").read_text())
    assert outcome.computed == [8, 9] and outcome.counted == 10
    assert history[:8] == before  # the told trials are kept as they were
    params = [tuple(sorted(e["params"].items())) for e in history]
    assert len(set(params)) == 10
    # another search (a different range) is refused in the same folder
    config.search.space.style_weight = [1.0, 10.0, "log"]
    sweep = prepare(config, measures=MEASURES)
    with pytest.raises(NstjaxError, match="search.space.style_weight"):
        run_search(sweep, str(workdir), tiny_params, scorer=scorer, mesh=None)


@pytest.mark.parametrize("sampler", ["tpe", "qmc"])
def test_samplers_and_bounds(sampler, tiny_params, images_dir, tmp_path):
    """4 trials in generations of 2; a bound on ``dist`` decides feasibility from the measures."""
    config = search_config(images_dir, trials=4, generation=2)
    config.search.sampler = sampler
    config.search.prune.steps = []
    sweep = prepare(config, measures=MEASURES)
    first = run_search(sweep, str(tmp_path), tiny_params, scorer=scorer, mesh=None, log=print)
    history = json.loads((tmp_path / "search" / "trials.json").read_text())
    assert [e["state"] for e in history] == ["complete"] * 4
    # a bound half-way between the best and the worst measure splits the trials
    values = sorted(e["measures"]["dist"] for e in history)
    high = (values[0] + values[-1]) / 2
    config.search.trials = 6
    config.search.objective.bounds.dist = [None, high]
    sweep = prepare(config, measures=MEASURES)
    with pytest.raises(NstjaxError, match="search.objective.bounds.dist"):
        run_search(sweep, str(tmp_path), tiny_params, scorer=scorer, mesh=None)
    fresh = tmp_path / "bounded"
    run_search(sweep, str(fresh), tiny_params, scorer=scorer, mesh=None, log=print)
    history = json.loads((fresh / "search" / "trials.json").read_text())
    assert len(history) == 6 and first.counted == 4
    for e in history:
        assert e["feasible"] == (e["measures"]["dist"] <= high)
    feasible = [e["objective"] for e in history if e["feasible"]]
    best = max(feasible) if feasible else None
    assert history[-1]["best_so_far"] == best


def test_an_interrupted_search_says_what_a_rerun_goes_on_from(tiny_params, images_dir, tmp_path,
                                                               monkeypatch):  # fmt: skip
    """Interrupted in its second generation, the first generation's 4 trials are told and the
    4 in flight are run again by a rerun (their process is gone), which finishes the budget."""
    from nstjax.sweep import search

    real, generations = search._run_generation, []

    def second_interrupted(*args, **kwargs):
        generations.append(1)
        if len(generations) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(search, "_run_generation", second_interrupted)
    sweep = prepare(search_config(images_dir), measures=MEASURES)
    go = dict(scorer=scorer, mesh=None, log=lambda line: None, stream=open("/dev/null", "w"))
    with pytest.raises(KeyboardInterrupt) as interrupted:
        run_search(sweep, str(tmp_path), tiny_params, **go)
    assert interrupted.value.__notes__ == [
        f"search: 4 of 8 trial(s) told, kept in {tmp_path}; the 4 in flight run again; "
        "rerun the same command to go on"
    ]
    monkeypatch.setattr(search, "_run_generation", real)
    import subprocess
    import sys

    import optuna

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    url = f"sqlite:///{tmp_path / 'search' / 'search.db'}"
    study = optuna.load_study(study_name="search", storage=url)
    for trial in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
        owner = {**trial.user_attrs["owner"], "pid": int(dead.stdout)}  # the process is gone
        study._storage.set_trial_user_attr(trial._trial_id, "owner", owner)
    outcome = run_search(sweep, str(tmp_path), tiny_params, **go)
    assert len(outcome.retried) == 4 and outcome.counted == 8
