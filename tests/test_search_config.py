"""The ``search`` section of a sweep config: what it accepts, and bad input as one line (exit 2)
before anything compiles."""

import subprocess
import sys
import textwrap

import pytest

from nstjax.errors import NstjaxError
from nstjax.sweep import default_config, prepare
from nstjax.sweep.search import run_values

MEASURES = {"dist": "min", "sharp": "max"}


def search_config(images_dir):
    config = default_config()
    config.data.content = [str(images_dir / "tubingen.jpg")]
    config.data.style = [str(images_dir / "starry_night.jpg")]
    config.data.size = 16
    config.loss.content_layers = ["conv2_1"]
    config.loss.style_layers = ["conv1_1", "conv2_1"]
    config.optim.steps = 4
    config.search.trials = 8
    config.search.generation = 4
    config.search.space.style_weight = [1.0, 1e4, "log"]
    config.search.space.style_layers = {"conv1_1": [0.0, 1.0]}
    config.search.objective.weights.dist = 1.0
    return config


def test_a_valid_search(images_dir):
    config = search_config(images_dir)
    config.search.space.seed = [0, 100]
    config.search.objective.weights.sharp = 0.5
    config.search.objective.bounds.sharp = [0.1, None]
    config.search.prune.steps = [1, 2]
    spec = prepare(config, measures=MEASURES).search
    ranges = {r.name: (r.low, r.high, r.scale) for r in spec.ranges}
    assert ranges == {
        "style_weight": (1.0, 1e4, "log"),
        "style_layers.conv1_1": (0.0, 1.0, "linear"),
        "seed": (0.0, 100.0, "int"),
    }
    # the score: dist is lower-is-better, sharp higher-is-better
    assert spec.score({"dist": 2.0, "sharp": 4.0}) == -2.0 + 0.5 * 4.0
    assert spec.constraints({"dist": 0.0, "sharp": 0.3}) == {"sharp >= 0.1": pytest.approx(-0.2)}
    assert spec.prune_steps == (1, 2)


def test_a_grid_config_is_no_search(images_dir):
    config = search_config(images_dir)
    config.search.trials = 0
    assert prepare(config, measures=MEASURES).search is None


def test_trial_values_replace_one_layer_weight():
    base = {"style_layers": ["conv1_1", "conv2_1"], "style_loss": "gram", "seed": 0}
    params = {"style_layers.conv3_1": 0.25, "style_loss.mean_std": 2.0, "seed": 7.0}
    values = run_values(base, params)
    # a base list is equal weights summing to 1; the searched entry is added
    assert values["style_layers"] == {"conv1_1": 0.5, "conv2_1": 0.5, "conv3_1": 0.25}
    assert values["style_loss"] == {"gram": 1.0, "mean_std": 2.0}
    assert values["seed"] == 7 and isinstance(values["seed"], int)


BAD = [
    ("objective.weights", {"nope": 1.0}, "search.objective.weights.nope: unknown measure"),
    ("space.style_weight", [5.0, 5.0], "search.space.style_weight: empty range"),
    ("space.style_weight", [10.0, 1.0], "search.space.style_weight: reversed range"),
    ("space.tv_weight", [0.0, 1.0, "log"], "search.space.tv_weight: a log range must be > 0"),
    ("sampler", "tpee", "search.sampler: must be one of tpe, random, qmc, got 'tpee'"),
    ("prune.steps", [2, 4], "search.prune.steps: step 4 is outside the runs' steps (1..3"),
    ("space.size", [16, 32], "search.space.size: a static field"),
    ("space.steps", [1, 9], "search.space.steps: a static field"),
    ("space.style_layers", {"conv9_9": [0, 1]}, "search.space.style_layers.conv9_9: unknown"),
    ("space.learning_rate", [0.0, 1.0], "search.space.learning_rate: values must be > 0"),
    ("space.tv_weight", [0.0, 1.0, "cubic"], "search.space.tv_weight: scale must be one of"),
    ("space.seed", [0.5, 3], "search.space.seed: an integer range needs integer bounds"),
    ("prune.keep", 1.0, "search.prune.keep: must be in (0, 1)"),
    ("generation", 0, "search.generation: must be an integer >= 1"),
    ("objective.bounds", {"dist": [2.0, 1.0]}, "search.objective.bounds.dist: reversed bounds"),
]


def _set(config, path, value):
    *groups, last = path.split(".")
    node = config.search
    for g in groups:
        node = node[g]
    if isinstance(value, dict):
        for k, v in value.items():
            node[last][k] = v
    else:
        node[last] = value


@pytest.mark.parametrize("path, value, message", BAD, ids=[f"{b[0]}={b[1]}" for b in BAD])
def test_bad_search_input_is_one_line(images_dir, path, value, message):
    config = search_config(images_dir)
    _set(config, path, value)
    with pytest.raises(NstjaxError) as e:
        prepare(config, measures=MEASURES)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_a_search_needs_one_pair_and_no_axes(images_dir):
    config = search_config(images_dir)
    config.data.style = [str(images_dir / "starry_night.jpg"), str(images_dir / "great_wave.jpg")]
    with pytest.raises(NstjaxError, match="a search runs on one image pair"):
        prepare(config, measures=MEASURES)
    config = search_config(images_dir)
    config.sweep.axes.tv_weight = [0.0, 1.0]
    with pytest.raises(NstjaxError, match="sweep.axes: a search takes its runs from search.space"):
        prepare(config, measures=MEASURES)


DRIVER = textwrap.dedent(
    """
    import sys
    from nstjax.sweep import search, search_space
    search_space.quality_directions = lambda: {"dist": "min"}
    from nstjax.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_cli_bad_input_exit_2_before_anything_is_written(images_dir, tmp_path):
    config = tmp_path / "search.py"
    config.write_text(
        textwrap.dedent(
            f"""
            from nstjax.sweep import default_config

            def get_config(arg=None):
                config = default_config()
                config.data.content = [{str(images_dir / "tubingen.jpg")!r}]
                config.data.style = [{str(images_dir / "starry_night.jpg")!r}]
                config.optim.steps = 10
                config.search.trials = 4
                config.search.space.style_weight = [1.0, 1e4, "log"]
                config.search.objective.weights.dist = 1.0
                return config
            """
        )
    )
    workdir = tmp_path / "work"
    for override, message in [
        ("--config.search.sampler=tpee", "search.sampler: must be one of tpe, random, qmc"),
        ("--config.search.prune.steps=[20]", "search.prune.steps: step 20 is outside"),
    ]:
        args = ["sweep", "--config", str(config), "--workdir", str(workdir), override]
        proc = subprocess.run(
            [sys.executable, "-c", DRIVER, *args], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr
        assert not workdir.exists()


def test_the_quality_measures_and_their_smallest_images(images_dir):
    """Without ``measures``, the objective names the package's quality measures, whose images
    need 24 px a side: the output, and the style at the output's long side."""
    config = search_config(images_dir)
    config.search.objective.weights = {"content_fidelity": 1.0}
    with pytest.raises(NstjaxError, match=r"the output \(12x16\) is smaller than the 24 px"):
        prepare(config)
    config.data.size = 32  # output 24x32, the style 20x32
    with pytest.raises(NstjaxError, match=r"style image at the output's long side \(20x32\)"):
        prepare(config)
    config.data.size = 40
    assert prepare(config).search.directions["content_fidelity"] == "max"
    config.search.objective.weights = {"dist": 1.0}
    with pytest.raises(NstjaxError, match="unknown measure .*content_fidelity"):
        prepare(config)
