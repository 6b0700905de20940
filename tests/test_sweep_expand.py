"""Sweep configs: expansion into runs (product, zip, pairs, derived ratio), labels, bad input."""

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstjax.cli.sweep import load
from nstjax.config import load_config
from nstjax.errors import NstjaxError
from nstjax.sweep import default_config, prepare

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture
def base(images_dir):
    config = default_config()
    config.data.content = [str(images_dir / "tubingen.jpg"), str(images_dir / "chicago.jpg")]
    config.data.style = [str(images_dir / "starry_night.jpg")]
    config.data.size = 32
    return config


def test_product_times_zip_times_pairs(base):
    base.sweep.axes.style_weight = [1.0, 10.0, 100.0]
    base.sweep.axes.seed = [0, 1]
    base.sweep.zip.learning_rate = [1.0, 2.0, 3.0, 4.0]
    base.sweep.zip.tv_weight = [0.0, 0.1, 0.2, 0.3]
    runs = prepare(base).runs
    assert len(runs) == 2 * 3 * 2 * 4  # contents x style_weight x seed x zip rows
    seen = {
        (
            Path(r.content).name,
            r.values["style_weight"],
            r.values["seed"],
            r.values["learning_rate"],
        )
        for r in runs
    }
    expected = set(
        itertools.product(
            ["tubingen.jpg", "chicago.jpg"], [1.0, 10.0, 100.0], [0, 1], [1.0, 2.0, 3.0, 4.0]
        )
    )
    assert seen == expected
    for r in runs:  # zipped fields move together
        assert r.values["tv_weight"] == pytest.approx((r.values["learning_rate"] - 1) / 10)
    # order: pairs slowest, then axes by name (seed, style_weight), zip rows fastest
    assert [r.values["learning_rate"] for r in runs[:5]] == [1.0, 2.0, 3.0, 4.0, 1.0]
    assert runs[4].values["style_weight"] == 10.0 and runs[8].values["style_weight"] == 100.0
    assert runs[12].values["seed"] == 1 and Path(runs[24].content).name == "chicago.jpg"
    assert [r.id for r in runs] == [f"{i:04d}" for i in range(48)]
    assert runs[13].label == (
        "content=tubingen, seed=1, style_weight=1, learning_rate=2, tv_weight=0.1"
    )


def test_pairing_product_and_zip(base, images_dir):
    base.data.style = [str(images_dir / "starry_night.jpg"), str(images_dir / "great_wave.jpg")]
    product = prepare(base).runs
    assert [(Path(r.content).stem, Path(r.style).stem) for r in product] == [
        ("tubingen", "starry_night"),
        ("tubingen", "great_wave"),
        ("chicago", "starry_night"),
        ("chicago", "great_wave"),
    ]
    base.data.pairing = "zip"
    zipped = prepare(base).runs
    assert [(Path(r.content).stem, Path(r.style).stem) for r in zipped] == [
        ("tubingen", "starry_night"),
        ("chicago", "great_wave"),
    ]


def test_folder_expands_to_its_images(base, tmp_path, images_dir):
    for name in ("b.png", "a.jpg"):
        (tmp_path / name).write_bytes((images_dir / "skimage_chelsea.png").read_bytes())
    (tmp_path / "notes.txt").write_text("not an image")
    base.data.content = [str(tmp_path)]
    assert [Path(r.content).name for r in prepare(base).runs] == ["a.jpg", "b.png"]


def test_content_style_ratio_sets_style_weight(base):
    base.data.content = base.data.content[:1]
    base.loss.content_weight = 2.0
    base.sweep.axes.content_style_ratio = [1e-5, 1e-3, 1e-1]
    runs = prepare(base).runs
    assert [r.values["style_weight"] for r in runs] == [2e5, 2e3, 20.0]
    assert [r.label for r in runs] == [
        "content_style_ratio=1e-05",
        "content_style_ratio=0.001",
        "content_style_ratio=0.1",
    ]


def test_single_run_and_layer_labels(base):
    base.data.content = base.data.content[:1]
    assert [r.label for r in prepare(base).runs] == ["run"]
    base.sweep.axes.style_layers = [["conv1_1"], ["conv1_1", "conv2_1"]]
    labels = [r.label for r in prepare(base).runs]
    assert labels == ["style_layers=conv1_1", "style_layers=conv1_1+conv2_1"]


def test_expansion_is_stable(base):
    base.sweep.axes.style_weight = [1.0, 2.0]
    a, b = prepare(base).runs, prepare(base).runs
    assert [(r.id, r.label, r.values) for r in a] == [(r.id, r.label, r.values) for r in b]


def test_every_problem_listed_at_once(base, tmp_path):
    bad_image = tmp_path / "broken.jpg"
    bad_image.write_bytes(b"not a jpeg")
    base.data.content = [str(tmp_path / "missing_folder"), str(bad_image)]
    base.sweep.axes.style_weight = []
    base.sweep.axes.sytle_weight = [1.0]
    base.sweep.zip.seed = [0, 1]
    base.sweep.zip.learning_rate = [1.0, 2.0, 3.0]
    base.loss.tv_weight = -1.0
    base.optim.typo = 3
    with pytest.raises(NstjaxError) as info:
        prepare(base)
    message = str(info.value)
    for part in (
        "unknown config field 'optim.typo'",
        "missing_folder': no such file or folder",
        "broken.jpg': not an image",
        "sweep.axes.style_weight: empty list",
        "sweep.axes.sytle_weight: unknown axis",
        "sweep.zip: lists must have one length (learning_rate has 3, seed has 2)",
    ):
        assert part in message
    assert "\n" not in message


def test_bad_values_are_listed(base):
    base.data.content = base.data.content[:1]
    base.sweep.axes.style_weight = [1.0, -1.0]
    base.sweep.axes.optimizer = ["adam", "sgd"]
    base.sweep.axes.style_layers = [["conv1_1"], ["conv9_9"]]
    with pytest.raises(NstjaxError) as info:
        prepare(base)
    message = str(info.value)
    assert "style-weight must be finite and >= 0, got -1.0" in message
    assert (
        "optimizer must be one of adam, lbfgs, lbfgs_wolfe, lbfgs_wolfe_torch, got 'sgd'" in message
    )
    assert "unknown layer name(s) 'conv9_9'" in message


def test_image_too_small_for_the_deepest_layer(base):
    base.data.size = 8  # conv5_1 is 1/16 of the input
    with pytest.raises(NstjaxError, match="too small for conv5_1"):
        prepare(base)


def test_overrides_typos_listed_together():
    with pytest.raises(NstjaxError, match="stlye_weight"):
        load_config(str(CONFIGS / "pairs.py:quick"), ["loss.stlye_weight=1"])
    _, problems = load(str(CONFIGS / "pairs.py:quick"), ["loss.stlye_weight=1", "data.szie=3"])
    assert len(problems) == 2 and "stlye_weight" in problems[0] and "szie" in problems[1]


@pytest.mark.parametrize(
    ("spec", "count"),
    [
        ("gatys2016.py", 1),
        ("gatys2016.py:quick", 1),
        ("sweep_style_weight.py", 25),
        ("sweep_style_weight.py:quick", 25),
        ("pairs.py", 2),
        ("pairs.py:quick", 2),
        ("paper_content_reconstructions.py:quick", 5),
        ("paper_style_reconstructions.py:quick", 5),
        ("paper_ratio_grid.py:quick", 25),
    ],
)
def test_shipped_configs(spec, count):
    sweep = prepare(load_config(str(CONFIGS / spec)))
    assert len(sweep.runs) == count
    if spec.endswith(":quick"):
        assert max(sweep.output_shape(sweep.runs[0])) <= 64
        assert sweep.config.optim.steps <= 20


def test_style_weight_grid_is_the_papers():
    sweep = prepare(load_config(str(CONFIGS / "sweep_style_weight.py:quick")))
    cells = {(r.coords["style_layers"], round(r.values["style_weight"], 6)) for r in sweep.runs}
    layers = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    rows = ["+".join(layers[: i + 1]) for i in range(5)]
    ratios = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    assert cells == {(row, round(1.0 / ratio, 6)) for row in rows for ratio in ratios}
    for run in sweep.runs:
        np.testing.assert_allclose(
            run.values["content_weight"] / run.values["style_weight"],
            float(run.coords["content_style_ratio"]),
        )


def test_unreadable_style_is_reported(base, tmp_path):
    truncated = tmp_path / "half.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    base.data.style = [str(truncated)]
    with pytest.raises(NstjaxError, match="half.png"):
        prepare(base)


def test_average_decay_reaches_each_runs_options(base):
    """optim.average_decay (an axis like the other static fields) and the crowsonkb preset's
    0.99 (its avg_decay, cited in nstjax/presets/crowsonkb.py) end up in each run's Options."""
    from nstjax.sweep.expand import options_of

    base.sweep.axes.average_decay = [0.0, 0.5]
    assert sorted(options_of(r.values).average_decay for r in prepare(base).runs) == [
        0,
        0,
        0.5,
        0.5,
    ]
    base.sweep.axes = {}
    base.preset = "crowsonkb"
    assert {options_of(r.values).average_decay for r in prepare(base).runs} == {0.99}
    base.optim.average_decay = 0.9  # given: the preset's value does not replace it
    assert {options_of(r.values).average_decay for r in prepare(base).runs} == {0.9}
