"""Feed-forward training with the package's style losses (tiny VGG, tiny network, 32 px): K
networks with different losses in one (vmapped) step, each reporting the loss the numpy formulas of
tests/conftest.py give for its output; bad specs are one-line errors."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from conftest import np_gram_loss, np_mean_std_loss
from conftest import train_config as _config

from nstjax import image, vgg
from nstjax.cli import main
from nstjax.errors import NstjaxError
from nstjax.feedforward import TrainConfig, data, train, training
from nstjax.feedforward import config as config_lib
from nstjax.feedforward.checkpoint import write_config
from nstjax.feedforward.training import _init_state, objective_of

SPECS = ("gram", "mean_std", "gram:1,mean_std:0.5")
STYLES = ("starry_night.jpg", "the_scream.jpg", "starry_night.jpg")


def _numpy_style_terms(tiny_params, config, outputs, styles) -> np.ndarray:
    """``[K]`` batch-mean style terms of ``outputs`` ``[K, B, S, S, 3]`` under :data:`SPECS`."""
    features = jax.jit(vgg.features, static_argnums=2)
    layers = config.style_layers

    def feats(x):
        return {n: np.asarray(v, np.float64) for n, v in features(tiny_params, x, layers).items()}

    def one(output, style, kind):
        f, s = feats(output), feats(style)
        gram = np.mean([np_gram_loss(f[n], s[n]) for n in layers])
        mean_std = np.mean([np_mean_std_loss(f[n], s[n]) for n in layers])
        return {"gram": gram, "mean_std": mean_std, "mix": gram + 0.5 * mean_std}[kind]

    kinds = ("gram", "mean_std", "mix")
    return np.array(
        [
            np.mean([one(out, style, kind) for out in outputs[k]])
            for k, (style, kind) in enumerate(zip(styles, kinds))
        ]
    )


@pytest.mark.slow
def test_networks_with_different_style_losses_train_in_one_step(
    content_dir, images_dir, tiny_params, tmp_path, monkeypatch
):
    computed = []
    representations = training._style_targets_of
    monkeypatch.setattr(
        training,
        "_style_targets_of",
        lambda params, objective, style: (
            computed.append(style.shape) or representations(params, objective, style)
        ),
    )
    config = _config(
        content_dir, images_dir, STYLES, style_loss=SPECS, steps=2, network_axis="vmap"
    )
    result = train(config, tmp_path / "model", vgg_params=tiny_params, progress=False)
    assert len(computed) == 2  # three networks, two distinct style images
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["style_loss"] == list(SPECS)
    # history[0] is the loss of the initial networks on the first batch: rebuild both here
    objective = objective_of(config)
    assert objective.style_losses == ("gram", "mean_std")
    lr = np.ones((1,), np.float32)
    initial = _init_state(objective, jax.random.key(config.seed, impl="rbg"), lr)
    train_files, _ = data.split_content(config.content_dir, config.holdout)
    batches = data.training_batches(
        train_files, config.size, config.batch_size, config.crop, config.seed
    )
    params = jax.tree.map(lambda x: x[0], initial.params)
    output = np.asarray(objective.net.apply({"params": params}, batches[0], train=True))
    styles = [image.load_image(images_dir / s, config.size) for s in STYLES]
    expected = _numpy_style_terms(tiny_params, config, np.stack([output] * 3), styles)
    np.testing.assert_allclose(result.history[0, :, 2], expected, rtol=1e-4)
    assert expected[0] != pytest.approx(expected[1], rel=0.1)  # the losses differ
    assert np.all(np.isfinite(result.history))


def test_old_config_without_style_loss_loads_as_gram(tmp_path):
    config = TrainConfig(styles=("s.png",), content_dir="c", network_axis="vmap")
    old = json.loads(config.to_json())
    del old["style_loss"], old["network_axis"], old["max_nonfinite_steps"]
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(old))
    loaded = config_lib.load(tmp_path)
    assert loaded.style_loss == ("gram",) and loaded.network_axis == "vmap"  # as it was trained
    write_config(tmp_path, config)  # the same run: resumable
    with pytest.raises(NstjaxError, match="different style_loss"):
        write_config(tmp_path, dataclasses.replace(config, style_loss=("mrf",)))


def test_bad_style_loss_is_one_line_before_compiling(
    content_dir, images_dir, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(vgg, "load_params", lambda *a, **k: pytest.fail("loaded weights"))
    base = ["train", "--content-dir", str(content_dir), "--output", str(tmp_path / "m")]
    style = str(images_dir / "starry_night.jpg")
    for argv, fragment in (
        (["--style", style, "--style-loss", "gram:x"], "weight 'x' of 'gram' is not a number"),
        (["--style", style, "--style-loss", "gramm"], "unknown loss 'gramm'"),
        (
            ["--style", style, style, style, "--style-loss", "gram", "mrf"],
            "--style-loss: 2 values, but --style gives 3 networks",
        ),
        (
            ["--style", style, "--style-loss", "mrf", "--size", "32"],
            "style-loss 'mrf' at conv",
        ),
    ):
        assert main(base + argv) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("nstjax: error: ") and fragment in err, err
