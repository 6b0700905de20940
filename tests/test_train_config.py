"""`nstjax train`'s config: a ConfigDict of TrainConfig's fields, from a file or the defaults, with
the flags and --config.FIELD=VALUE on top (checked against TrainConfigs written out by hand)."""

import dataclasses
from pathlib import Path

import pytest

from nstjax.cli import build_parser
from nstjax.cli.train import _config
from nstjax.config import split_config_args
from nstjax.errors import NstjaxError
from nstjax.feedforward import NetworkConfig, TrainConfig
from nstjax.feedforward.config import default_config, from_config

ROOT = Path(__file__).resolve().parents[1]


def _parsed(argv: list[str]):
    rest, overrides = split_config_args(argv)
    args = build_parser().parse_args(["train", "--output", "out", *rest])
    args.config_overrides = overrides
    return args


def test_the_default_config_holds_every_field_with_its_default():
    config = default_config()
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(config.keys()) == fields
    assert (config.size, config.steps, config.batch_size) == (256, 40_000, 4)
    assert list(config.learning_rate) == [1e-3] and config.network.width == 32
    assert from_config(default_config()) == TrainConfig((), "")


def test_flags_alone_describe_the_same_run_as_before():
    argv = ["--style", "a.jpg", "b.jpg", "--content-dir", "photos", "--size", "32", "--steps",
            "6", "--style-weight", "10", "30", "--content-layers", "conv3_1,conv4_2", "--norm",
            "batch", "--style-size", "64"]  # fmt: skip
    expected = TrainConfig(
        styles=("a.jpg", "b.jpg"),
        content_dir="photos",
        size=32,
        steps=6,
        style_weight=(10.0, 30.0),
        content_layers=("conv3_1", "conv4_2"),
        style_size=64,
        network=NetworkConfig(norm="batch"),
    )
    assert _config(_parsed(argv)) == expected


def test_a_config_file_with_flags_and_overrides_on_top():
    argv = ["--config", f"{ROOT / 'configs' / 'train.py'}:quick", "--content-dir", "photos",
            "--config.steps=9", "--config.network.residual_blocks=2", "--lr", "0.01"]  # fmt: skip
    config = _config(_parsed(argv))
    assert config.styles == (str(ROOT / "nstjax" / "examples" / "starry_night.jpg"),)
    assert (config.size, config.steps, config.batch_size, config.holdout) == (32, 9, 2, 1)
    assert config.learning_rate == (0.01,) and config.network.residual_blocks == 2
    assert config.content_dir == "photos" and config.crop == "random"  # untouched: the default


def test_a_misspelt_field_is_a_one_line_error():
    with pytest.raises(NstjaxError, match="has no field 'stepz'"):
        _config(_parsed(["--config.stepz=3"]))


def test_train_without_content_dir_fails_in_one_line(capsys, tmp_path):
    from nstjax.cli import main

    assert main(["train", "--style", "a.jpg", "--output", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--content-dir: no folder given" in err, err
    assert not (tmp_path / "m").exists()
