"""One source of defaults: a sweep that sets only its data and steps is `nstjax stylize`."""

import numpy as np

from nstjax import vgg
from nstjax.cli import main
from nstjax.image import load_image
from nstjax.run import DEFAULT_LEARNING_RATES, Options, Run


def test_sweep_defaults_are_the_packages():
    from nstjax import examples
    from nstjax.sweep import default_config

    config, run, options = default_config(), Run(), Options()
    assert config.loss.style_weight == run.style_weight and config.loss.tv_weight == run.tv_weight
    assert config.loss.content_weight == run.content_weight
    assert tuple(config.loss.style_layers) == run.style_layers
    assert tuple(config.loss.content_layers) == run.content_layers
    assert config.optim.learning_rate is None and config.optim.steps == options.steps
    assert config.data.content == [str(examples.CONTENT)]
    assert config.data.style == [str(examples.STYLE)]
    # the optimiser-dependent learning rate is one rule, used by the CLI, configs and the API
    assert Run().step_size("adam") == DEFAULT_LEARNING_RATES["adam"] == 4.0
    assert Run().step_size("lbfgs") == DEFAULT_LEARNING_RATES["lbfgs"] == 1.0


def test_a_sweep_of_one_pair_equals_stylize_with_its_defaults(
    tiny_params, images_dir, tmp_path, monkeypatch
):
    """Before: the sweep's defaults used 3,000x the style weight (4.9 grey levels apart)."""
    from nstjax import sweep

    monkeypatch.setenv("NSTJAX_COMPILATION_CACHE", "0")
    monkeypatch.setattr(vgg, "load_params", lambda *a, **k: tiny_params)
    content, style = str(images_dir / "tubingen.jpg"), str(images_dir / "starry_night.jpg")
    out = tmp_path / "cli.png"
    argv = ["stylize", "--content", content, "--style", style, "--output", str(out)]
    assert main([*argv, "--size", "32", "--steps", "6"]) == 0

    config = sweep.default_config()
    config.data.content, config.data.style, config.data.size = [content], [style], 32
    config.optim.steps = 6
    outcome = sweep.run_sweep(sweep.prepare(config), str(tmp_path / "w"), tiny_params)
    assert outcome.done == 1
    (image_png,) = (tmp_path / "w" / "runs").glob("*/image.png")
    a, b = load_image(out), load_image(image_png)
    assert a.shape == b.shape == (24, 32, 3)
    assert np.abs(a - b).max() * 255 <= 1.0  # the same to 8-bit rounding
    # and the run really moved away from its content image
    assert np.abs(a - load_image(content, 32)).mean() * 255 > 0.5
