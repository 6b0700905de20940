"""Presets (nstjax.presets): each preset's loss, computed by the engine, equals its reference's
formula written here independently in numpy (float64, on the same tiny network's features).

The engine computes in float32. Its longest reduction is the Gram's sum over the ``h w`` positions
of conv1_1 (features after a ReLU: terms of one sign); every other sum (the content and TV sums,
the sum over the Gram's ``N^2`` entries, the layers) is shorter. The tolerance is the bound on
that sum's relative error, ``gamma_{h w}`` (conftest's ``float32_sum_rtol``): 4.6e-5 at 32x24 and
1.1e-4 at 48x40, above what any CPU's rounding gives (2.06e-5 measured on an AMD EPYC, where a
fixed 2e-5 failed) and far below what a wrong constant or layer gives (a factor).
"""

import jax.numpy as jnp
import numpy as np
import pytest

from nstjax import engine, losses, preset_run, preset_settings, presets, vgg
from nstjax.architecture import LAYER_NAMES
from nstjax.errors import NstjaxError
from nstjax.run import layer_weight_vector

SHAPES = [(32, 24), (48, 40)]  # non-square, so that a swapped height and width shows
STYLE = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")


def _channels(params):
    return {n: int(params["params"][n]["kernel"].shape[-1]) for n in LAYER_NAMES}


def _images(shape, seed=0):
    rng = np.random.default_rng(seed)
    pixels, content, style = (rng.random((*shape, 3)).astype(np.float32) for _ in range(3))
    return pixels * 255.0, content, style


def _engine_terms(params, preset, pixels, content, style):
    """``(content, style, tv)`` contributions (weight x term) and the total, from run_loss."""
    run = preset.run
    program = engine.Program(
        content_layers=tuple(run["content_layers"]),
        style_layers=tuple(run["style_layers"]),
        pooling=preset.options["pooling"],
    )
    pooling = program.pooling
    targets = engine.Targets(
        content=vgg.features(params, jnp.asarray(content), program.content_layers, pooling),
        style={
            "gram": {
                n: losses.gram(f)
                for n, f in vgg.features(
                    params, jnp.asarray(style), program.style_layers, pooling
                ).items()
            }
        },
    )
    hyper = engine.Hyper(
        content_weight=jnp.float32(run["content_weight"]),
        style_weight=jnp.float32(run["style_weight"]),
        tv_weight=jnp.float32(run["tv_weight"]),
        content_layer_weights=jnp.asarray(layer_weight_vector(run["content_layers"], "c")),
        style_layer_weights=jnp.asarray(layer_weight_vector(run["style_layers"], "s")),
        learning_rate=jnp.float32(1.0),
    )
    total, terms = engine.run_loss(params, program, jnp.asarray(pixels), hyper, targets)
    terms = np.asarray(terms, np.float64)
    weights = (run["content_weight"], run["style_weight"], run["tv_weight"])
    return float(total), terms[1:] * np.asarray(weights)


def _features64(params, image, layers, pooling):
    feats = vgg.features(params, jnp.asarray(image), layers, pooling)
    return {n: np.asarray(f, np.float64) for n, f in feats.items()}


def _flat(f):
    return f.reshape(-1, f.shape[-1])  # [M, N]: positions x filters


# --- the references' formulas, in numpy ---
def paper_formula(fx, fc, fs, alpha, beta, content_layer="conv4_2", style_layers=STYLE):
    """Gatys 2016, eqs. 1, 3-5, 7: 1/2 sum (F-P)^2; E_l = sum (G-A)^2 / (4 N^2 M^2), w_l = 1/L."""
    content = 0.5 * np.sum((fx[content_layer] - fc[content_layer]) ** 2)
    style = 0.0
    for layer in style_layers:
        f, a = _flat(fx[layer]), _flat(fs[layer])
        m, n = f.shape
        g_raw, a_raw = f.T @ f, a.T @ a
        style += np.sum((g_raw - a_raw) ** 2) / (4.0 * n**2 * m**2) / len(style_layers)
    return alpha * content, beta * style, 0.0


def gatys_formula(fx, fc, fs):
    """NeuralStyleTransfer.ipynb In [3], In [8]: MSE(r42) + sum 1e3/n^2 MSE(F^T F/(h w), A)."""
    content = np.mean((fx["conv4_2"] - fc["conv4_2"]) ** 2)
    style = 0.0
    for layer, n_literal in zip(STYLE, (64, 128, 256, 512, 512)):
        f, a = _flat(fx[layer]), _flat(fs[layer])
        g, t = f.T @ f / f.shape[0], a.T @ a / a.shape[0]
        style += 1e3 / n_literal**2 * np.mean((g - t) ** 2)
    return content, style, 0.0


def neural_style_formula(fx, fc, fs, pixels):
    """neural_style.lua: 5 MSE(relu4_2), 100 MSE(F F^T / (C H W)) per layer, and the TV whose
    gradient TVLoss:updateGradInput computes: 1e-3 * 1/2 sum over [1, H-1] x [1, W-1] of
    (x[i, j] - x[i, j+1])^2 + (x[i, j] - x[i+1, j])^2."""
    content = 5.0 * np.mean((fx["conv4_2"] - fc["conv4_2"]) ** 2)
    style = 0.0
    for layer in STYLE:
        f, a = _flat(fx[layer]), _flat(fs[layer])
        size = f.size
        style += 100.0 * np.mean((f.T @ f / size - a.T @ a / size) ** 2)
    x = np.asarray(pixels, np.float64)
    x_diff = x[:-1, :-1] - x[:-1, 1:]
    y_diff = x[:-1, :-1] - x[1:, :-1]
    tv = 1e-3 * 0.5 * (np.sum(x_diff**2) + np.sum(y_diff**2))
    return content, style, tv


def lua_tv_boundary(pixels):
    """The differences neural-style's TVLoss leaves out and nstjax's tv_loss includes: the last
    row's horizontal ones and the last column's vertical ones (a stated difference)."""
    x = np.asarray(pixels, np.float64)
    last_row = x[-1, :-1] - x[-1, 1:]
    last_col = x[:-1, -1] - x[1:, -1]
    return 1e-3 * 0.5 * (np.sum(last_row**2) + np.sum(last_col**2))


def nstjax_formula(fx, fc, fs, pixels):
    """nstjax.losses' docstring: mean content; Gram / (h w C), mean, equal weights 1/5; weights
    1, 30, 1; TV = (sum dy^2 + sum dx^2) / (H W) in 0-255 units."""
    content = 1.0 * np.mean((fx["conv4_2"] - fc["conv4_2"]) ** 2)
    style = 0.0
    for layer in STYLE:
        f, a = _flat(fx[layer]), _flat(fs[layer])
        style += 0.2 * np.mean((f.T @ f / f.size - a.T @ a / a.size) ** 2)
    x = np.asarray(pixels, np.float64)
    tv = (np.sum((x[1:] - x[:-1]) ** 2) + np.sum((x[:, 1:] - x[:, :-1]) ** 2)) / x[..., 0].size
    return content, 30.0 * style, 1.0 * tv


def _compare(params, preset, shape, formula):
    pixels, content, style = _images(shape)
    pooling = preset.options["pooling"]
    layers = (*preset.run["content_layers"], *preset.run["style_layers"])
    fx = _features64(params, pixels / 255.0, layers, pooling)
    fc = _features64(params, content, layers, pooling)
    fs = _features64(params, style, layers, pooling)
    total, terms = _engine_terms(params, preset, pixels, content, style)
    expected = np.asarray(formula(fx, fc, fs, pixels), np.float64)
    return total, terms, expected, pixels


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("alpha_over_beta", [1e-3, 1e-5])
def test_paper_preset_is_the_papers_formula(tiny_params, shape, alpha_over_beta, float32_sum_rtol):
    rtol = float32_sum_rtol(shape[0] * shape[1])
    preset = presets.preset_values(
        "paper", shape, _channels(tiny_params), alpha_over_beta=alpha_over_beta
    )
    formula = lambda fx, fc, fs, _: paper_formula(fx, fc, fs, 1.0, 1.0 / alpha_over_beta)
    total, terms, expected, _ = _compare(tiny_params, preset, shape, formula)
    np.testing.assert_allclose(terms, expected, rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(total, expected.sum(), rtol=rtol)
    assert preset.options["pooling"] == "avg" and preset.run["tv_weight"] == 0.0


def test_paper_preset_follows_the_layers_chosen(tiny_params, float32_sum_rtol):
    """--content-layers conv2_2 and two style layers: the constants are those layers' (h w C / 2
    at conv2_2; w_l = 1/2 and N_l^2 / 4 for the style layers)."""
    shape = SHAPES[0]
    rtol = float32_sum_rtol(shape[0] * shape[1])
    preset = presets.preset_values(
        "paper",
        shape,
        _channels(tiny_params),
        content_layers=["conv2_2"],
        style_layers=("conv1_1", "conv3_1"),
    )
    formula = lambda fx, fc, fs, _: paper_formula(
        fx, fc, fs, 1.0, 1e3, "conv2_2", ("conv1_1", "conv3_1")
    )
    _, terms, expected, _ = _compare(tiny_params, preset, shape, formula)
    np.testing.assert_allclose(terms, expected, rtol=rtol, atol=1e-9)


def test_layer_weight_mappings_multiply_the_constants():
    base = presets.preset_values("paper", (64, 64), content_layers=["conv3_2"])
    scaled = presets.preset_values("paper", (64, 64), content_layers={"conv3_2": 0.25})
    assert scaled.run["content_layers"]["conv3_2"] == 0.25 * base.run["content_layers"]["conv3_2"]
    ns = presets.preset_values("neural-style", (64, 64), style_layers="conv1_1,conv2_1")
    assert ns.run["style_layers"] == {"conv1_1": 1.0, "conv2_1": 1.0}  # each the full weight
    ours = presets.preset_values("nstjax", (64, 64), style_layers=["conv1_1", "conv2_1"])
    assert ours.run["style_layers"] == {"conv1_1": 0.5, "conv2_1": 0.5}
    with pytest.raises(NstjaxError, match="conv9_9"):
        presets.preset_values("gatys", (64, 64), style_layers=["conv9_9"])


@pytest.mark.parametrize("shape", SHAPES[:1])
def test_gatys_preset_is_the_notebooks_formula(tiny_params, shape, float32_sum_rtol):
    rtol = float32_sum_rtol(shape[0] * shape[1])
    preset = presets.preset_values("gatys", shape, _channels(tiny_params))
    formula = lambda fx, fc, fs, _: gatys_formula(fx, fc, fs)
    total, terms, expected, _ = _compare(tiny_params, preset, shape, formula)
    np.testing.assert_allclose(terms, expected, rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(total, expected.sum(), rtol=rtol)


def test_gatys_layer_weights_are_one_on_vgg19():
    """The notebook's 1e3/n^2 undoes its Gram's extra factor C^2 exactly on VGG-19's widths."""
    preset = presets.preset_values("gatys", (512, 512))
    assert preset.run["style_layers"] == {layer: 1.0 for layer in STYLE}
    assert preset.run["style_weight"] == 1e3


@pytest.mark.parametrize("shape", SHAPES)
def test_neural_style_preset_is_its_formula_up_to_the_stated_tv_boundary(
    tiny_params, shape, float32_sum_rtol
):
    rtol = float32_sum_rtol(shape[0] * shape[1])
    preset = presets.preset_values("neural-style", shape, _channels(tiny_params))
    total, terms, expected, pixels = _compare(tiny_params, preset, shape, neural_style_formula)
    np.testing.assert_allclose(terms[:2], expected[:2], rtol=rtol, atol=1e-9)
    boundary = lua_tv_boundary(pixels)
    np.testing.assert_allclose(terms[2], expected[2] + boundary, rtol=rtol)
    assert boundary < 0.1 * expected[2]  # the difference is a few percent of the term
    np.testing.assert_allclose(total, expected.sum() + boundary, rtol=rtol)


def test_nstjax_preset_is_todays_defaults(tiny_params, float32_sum_rtol):
    rtol = float32_sum_rtol(SHAPES[0][0] * SHAPES[0][1])
    preset = presets.preset_values("nstjax", SHAPES[0])
    total, terms, expected, _ = _compare(tiny_params, preset, SHAPES[0], nstjax_formula)
    np.testing.assert_allclose(terms, expected, rtol=rtol, atol=1e-9)
    assert preset.options["optimizer"] == "adam" and preset.run["init"] == "content"


@pytest.mark.parametrize("name", presets.PRESET_NAMES)
def test_every_value_cites_its_source(name):
    preset = presets.preset_values(name, (64, 48))
    assert set(preset.options) == set(presets.OPTION_NAMES)
    assert set(preset.sources) == set(preset.run) | set(preset.options)
    assert all(isinstance(s, str) and s for s in preset.sources.values())


def test_the_reference_numbers():
    """Spot values, read off the sources by hand (see the citations)."""
    ns = presets.preset_values("neural-style", (512, 384))
    assert (ns.run["content_weight"], ns.run["style_weight"]) == (5.0, 100.0)
    assert ns.run["tv_weight"] == pytest.approx(1e-3 * 512 * 384 / 2)
    assert ns.run["noise_scale"] == 0.001 and ns.options["steps"] == 1000
    assert ns.options["lbfgs_history"] == 100 and ns.options["pooling"] == "max"
    paper = presets.preset_values("paper", (512, 512))
    assert paper.run["content_layers"] == {"conv4_2": 0.5 * 64 * 64 * 512}
    assert paper.run["style_layers"]["conv1_1"] == pytest.approx(0.2 * 64**2 / 4)
    assert paper.run["style_weight"] == pytest.approx(1e3)
    assert presets.preset_values("gatys", (1, 1)).options["multiscale"] == ((512, 500), (800, 200))


def test_bad_preset_name_is_a_one_line_error_listing_the_valid_ones():
    with pytest.raises(NstjaxError) as info:
        presets.preset_values("gatys2016", (64, 64))
    message = str(info.value)
    assert "\n" not in message and "gatys2016" in message
    assert all(name in message for name in presets.PRESET_NAMES)


def test_unknown_preset_option_is_an_error():
    with pytest.raises(NstjaxError, match="alpha_over_beta"):
        presets.preset_values("gatys", (64, 64), alpha_over_beta=1e-3)


# --- resolution: explicit values over a preset, conflicts (no compilation) ---
def _resolve(name, shape, explicit):
    """A preset's run fields at ``shape`` and its static options, ``explicit`` on top."""
    options = preset_settings.static_settings(name, explicit)
    return preset_settings.run_settings(name, shape, explicit), options


def test_explicit_values_override_the_preset_and_layers_keep_its_formula():
    run, options = _resolve(
        "paper", (64, 64), {"content_layers": "conv2_2", "tv_weight": 0.5, "steps": 40}
    )
    assert run["content_layers"] == {"conv2_2": 0.5 * 32 * 32 * 128}  # conv2_2's own h w C / 2
    assert run["tv_weight"] == 0.5 and options["steps"] == 40
    assert options["pooling"] == "avg" and options["optimizer"] == "lbfgs_wolfe"  # the preset's


def test_another_optimizer_takes_its_own_default_step():
    run, _ = _resolve("neural-style", (64, 64), {"optimizer": "adam"})
    assert run["learning_rate"] is None  # Adam's default, not L-BFGS's 1
    run, _ = _resolve("neural-style", (64, 64), {"optimizer": "adam", "learning_rate": 10})
    assert run["learning_rate"] == 10


def test_explicit_size_or_steps_drop_the_presets_schedule():
    _, options = _resolve("gatys", (64, 64), {})
    assert options["multiscale"] == ((512, 500), (800, 200))
    _, options = _resolve("gatys", (64, 64), {"size": 128})
    assert options["multiscale"] is None and options["size"] == 128


@pytest.mark.parametrize(
    "name, explicit, match",
    [
        ("nstjax", {"multiscale": ((32, 5), (64, 5)), "size": 64}, "--multiscale replaces --size"),
        ("paper", {"multiscale": ((32, 5), (64, 5))}, "depend on the output size"),
        ("neural-style", {"multiscale": ((32, 5), (64, 5))}, "depend on the output size"),
        ("nstjax", {"noise_scale": 2.0}, "--noise-scale applies to --init noise only"),
        ("paper", {"noise_scale": 2.0, "init": "content"}, "init is 'content'"),
    ],
)
def test_conflicting_options_are_one_line_errors(name, explicit, match):
    with pytest.raises(NstjaxError, match=match) as info:
        _resolve(name, (64, 64), explicit)
    assert "\n" not in str(info.value)


def test_size_dependence_and_static_options():
    """A preset declares its size-dependence; its static options are the same at every shape."""
    for name in presets.PRESET_NAMES:
        small, large = presets.preset_values(name, (64, 64)), presets.preset_values(name, (128, 96))
        assert presets.size_dependent(name) == (small.run != large.run), name
        assert small.options == large.options == presets.static_options(name), name
    assert presets.size_dependent("paper") and presets.size_dependent("neural-style")
    assert not presets.size_dependent("gatys") and not presets.size_dependent("nstjax")


def test_make_gives_a_run_and_options():
    made = preset_run.make("neural-style", (48, 64), seed=3, dtype="bfloat16", style_weight=50.0)
    assert made.run.noise_scale == 0.001 and made.run.init == "noise" and made.run.seed == 3
    assert made.run.style_weight == 50.0 and made.run.tv_weight == pytest.approx(1e-3 * 48 * 32)
    assert (made.options.steps, made.options.optimizer, made.options.dtype) == (
        1000,
        "lbfgs",
        "bfloat16",
    )
    assert made.size == 512 and made.schedule is None
    with pytest.raises(NstjaxError, match="stepz"):
        preset_run.make("paper", (64, 64), stepz=3)


def test_cli_bad_preset_and_conflicts_fail_before_anything_runs(tmp_path, capsys):
    from nstjax.cli import main

    out = str(tmp_path / "r.png")
    for extra, match in [
        (["--preset", "gatys2016"], "valid presets are paper, gatys, neural-style, nstjax"),
        (["--multiscale", "32:5,64:5", "--size", "64"], "--multiscale replaces --size"),
        (["--preset", "paper", "--multiscale", "32:5,64:5"], "depend on the output size"),
        (["--init", "content", "--noise-scale", "3"], "--noise-scale applies to --init noise"),
    ]:
        assert main(["stylize", "--output", out, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert match in err and "\n" not in err, err
    assert not (tmp_path / "r.png").exists()


def test_sweep_config_preset_fills_what_the_config_leaves(images_dir):
    """The preset's run fields are resolved once, at each run's real output shape."""
    from nstjax.sweep import default_config, prepare

    config = default_config()
    config.data.content = [str(images_dir / "tubingen.jpg")]
    config.data.style = [str(images_dir / "starry_night.jpg")]
    config.data.size = 32
    config.preset = "paper"
    config.loss.style_weight = 0.0
    config.sweep.axes.content_layers = [["conv1_2"], ["conv4_2"]]
    sweep = prepare(config)
    for run in sweep.runs:
        v = run.values
        assert (v["pooling"], v["optimizer"], v["lbfgs_history"], v["init"]) == (
            "avg",
            "lbfgs_wolfe",
            100,
            "noise",
        )
        assert v["size"] == 32 and v["style_weight"] == 0.0  # the config's own values
        h, w = sweep.output_shape(run)
        assert (h, w) == (24, 32)  # tubingen.jpg is 4:3 landscape
        (layer,) = v["content_layers"]
        f = {"conv1_2": 1, "conv4_2": 8}[layer]
        channels = {"conv1_2": 64, "conv4_2": 512}[layer]
        expected = 0.5 * (h // f) * (w // f) * channels  # the paper's 1/2 sum at this shape
        assert v["content_layers"] == {layer: expected}
    for item, run in zip(sweep.items(), sweep.runs):
        assert item.run.content_layers == run.values["content_layers"]
        assert item.run.style_weight == 0.0 and item.run.init == "noise"


def test_noise_scale_is_a_sweep_axis(images_dir):
    from nstjax.sweep import default_config, prepare

    config = default_config()
    config.data.content = [str(images_dir / "tubingen.jpg")]
    config.data.style = [str(images_dir / "starry_night.jpg")]
    config.data.size = 32
    config.init = "noise"
    config.sweep.axes.noise_scale = [0.001, 1.0, 8.0]
    sweep = prepare(config)
    assert [r.run.noise_scale for r in sweep.items()] == [0.001, 1.0, 8.0]
    config.preset = "bogus"
    with pytest.raises(NstjaxError, match="valid presets are"):
        prepare(config)


def test_api_stylize_takes_a_preset(tiny_params):
    """The API argument: the preset's objective and options, the given settings on top."""
    from nstjax import api

    content, style, _ = (x / 255.0 if x.max() > 1 else x for x in _images((16, 16)))
    out = api.stylize(
        content, style, params=tiny_params, preset="neural-style", steps=2, lbfgs_history=3
    )
    assert out.shape == (16, 16, 3) and np.all(np.isfinite(out))
    with pytest.raises(NstjaxError, match="--noise-scale applies"):
        api.stylize(content, style, params=tiny_params, preset="gatys", noise_scale=2.0)
