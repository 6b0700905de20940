"""The crowsonkb/style-transfer-pytorch preset against its source (values transcribed by hand from
style_transfer/style_transfer.py at e7e2c71) and numpy transcriptions of its formulas."""

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from nstjax import losses, presets, style_losses
from nstjax.cli import main


def np_gen_scales(start: int, end: int) -> list[int]:
    """Its ``gen_scales`` (lines 268-276), transcribed."""
    scale, i, scales = end, 0, set()
    while scale >= start:
        scales.add(scale)
        i += 1
        scale = round(end / pow(2, i / 2))
    return sorted(scales)


def test_the_values_are_the_sources():
    preset = presets.preset_values("crowsonkb", (512, 384))
    run, options = preset.run, preset.options
    assert run["content_weight"] == 0.015  # line 351
    assert run["content_layers"] == {"conv4_2": 1.0}  # line 316: torchvision index 22
    weights = [256, 64, 16, 4, 1]  # line 320, normalised by their sum (321-322)
    expected = {
        f"conv{i}_1": w / 341 for i, w in zip(range(1, 6), weights)
    }  # indices 1, 6, 11, 20, 29
    assert run["style_layers"] == pytest.approx(expected, rel=1e-15)
    assert run["style_weight"] == 1.0 and run["style_loss"] == "gaussian_w2"
    assert run["tv_weight"] == pytest.approx(2 / 3 / 255**2, rel=1e-15)  # line 352, see below
    assert run["learning_rate"] == pytest.approx(5.1, rel=1e-15)  # 0.02 on [0, 1], line 358
    assert run["init"] == "content"  # line 360
    assert options["optimizer"] == "adam" and options["pooling"] == "max"
    assert options["average_decay"] == 0.99  # line 359
    assert options["size"] == 512  # line 355
    sizes = np_gen_scales(128, 512)  # lines 354-355
    assert sizes == [128, 181, 256, 362, 512]
    assert options["multiscale"] == tuple(zip(sizes, [1000, 500, 500, 500, 500]))  # 356-357
    assert set(preset.sources) == set(run) | set(options)
    assert not presets.size_dependent("crowsonkb")  # means only: a schedule may run it


def test_chosen_layers_share_the_weight():
    preset = presets.preset_values("crowsonkb", (64, 64), style_layers=["conv1_1", "conv3_1"])
    assert preset.run["style_layers"] == {"conv1_1": 0.5, "conv3_1": 0.5}


def np_style_loss_w2(x: np.ndarray, s: np.ndarray) -> float:
    """``StyleLossW2.forward`` (lines 162-181) with exact square roots and eps 0, float64;
    ``x``, ``s``: ``[C, h, w]`` features."""

    def stats(f):
        mean = f.mean((1, 2))
        srm = np.einsum("chw,dhw->cd", f, f) / (f.shape[1] * f.shape[2])
        return mean, srm - np.outer(mean, mean)

    def sqrtm(a):
        w, v = np.linalg.eigh(a)
        return (v * np.sqrt(np.clip(w, 0, None))) @ v.T

    mean, cov = stats(x)
    t_mean, t_cov = stats(s)
    root = sqrtm(t_cov)
    mean_diff = np.mean((mean - t_mean) ** 2)
    return mean_diff + np.diagonal(t_cov + cov - 2 * sqrtm(root @ cov @ root)).mean()


def test_gaussian_w2_is_its_style_loss():
    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=(6, 9, 7)), 0) + rng.random((6, 1, 1))
    s = np.maximum(rng.normal(1.0, 2.0, size=(6, 8, 8)), 0)
    target = style_losses.gaussian_w2_target(jnp.asarray(s.transpose(1, 2, 0), jnp.float32))
    score = style_losses.gaussian_w2_score(jnp.asarray(x.transpose(1, 2, 0), jnp.float32), target)
    # float32 eigh and products of O(1) entries: relative error well under 1e-4
    assert float(score) == pytest.approx(np_style_loss_w2(x, s), rel=1e-4)


def np_tv_nine_point(image: np.ndarray) -> float:
    """Its ``TVLoss`` (lines 184-195) on a ``[3, H, W]`` image, float64."""
    x = np.pad(image, ((0, 0), (1, 1), (1, 1)), mode="edge")
    s1, s2, s3, s4 = slice(1, -1), slice(2, None), slice(None, -1), slice(1, None)
    d1 = ((x[:, s1, s2] - x[:, s1, s1]) ** 2).mean() / 3
    d2 = ((x[:, s2, s1] - x[:, s1, s1]) ** 2).mean() / 3
    d3 = ((x[:, s4, s4] - x[:, s3, s3]) ** 2).mean() / 12
    d4 = ((x[:, s4, s3] - x[:, s3, s4]) ** 2).mean() / 12
    return 2 * (d1 + d2 + d3 + d4)


def test_the_tv_weight_gives_its_tv_term_on_a_smooth_image():
    """On a smooth image (a wide Gaussian bump, flat at the borders) the nine-point stencil and
    nstjax's two differences agree to the stencil's O(h^2) error."""
    yy, xx = np.mgrid[0:64, 0:64]
    bump = np.exp(-((yy - 31.5) ** 2 + (xx - 31.5) ** 2) / (2 * 8.0**2))
    image = np.stack([bump, 0.5 * bump, 0.2 + 0.3 * bump])  # [0, 1]
    theirs = 2.0 * np_tv_nine_point(image)  # tv_weight 2 (line 352)
    ours = presets.preset_values("crowsonkb", (64, 64)).run["tv_weight"] * float(
        losses.tv_loss(jnp.asarray(image.transpose(1, 2, 0) * 255.0, jnp.float32))
    )
    assert ours == pytest.approx(theirs, rel=0.02)


def _cli_run(*flags):
    """The one run ``nstjax stylize FLAGS`` describes (its config expanded at a 48x64 photo)."""
    from nstjax.cli import build_parser, stylize_config

    args = build_parser().parse_args(["stylize", "--output", "x.png", *flags])
    config = stylize_config.from_flags(args, ["c.png"], ["s.png"])
    (run,) = stylize_config.runs_of(config, ["c.png"], ["s.png"], {"c.png": (48, 64)})
    return run, stylize_config.options(run, args)


def test_the_cli_takes_the_presets_static_options():
    run, options = _cli_run("--preset", "crowsonkb")
    assert run.schedule == ((128, 1000), (181, 500), (256, 500), (362, 500), (512, 500))
    assert run.values["style_loss"] == "gaussian_w2"
    assert options.average_decay == 0.99
    _, options = _cli_run("--preset", "crowsonkb", "--average-decay", "0")
    assert options.average_decay == 0.0  # given, though it is the default: it wins
    run, options = _cli_run("--preset", "gatys")
    assert run.values["style_loss"] == "gram"
    assert options.average_decay == 0.0


@pytest.mark.slow
@pytest.mark.weights
def test_stylize_with_the_preset_runs_end_to_end(tmp_path, real_params, images_dir, capsys):
    """Two scales of a tiny schedule with the real weights; the averaged output differs from the
    last iterate's (--average-decay 0), so the averaging reached the result."""
    outputs = {}
    for decay in (None, "0"):
        out = tmp_path / f"out_{decay}.png"
        argv = ["stylize", "--preset", "crowsonkb", "--multiscale", "24:4,32:3", "--no-quality"]
        argv += ["--content", str(images_dir / "skimage_chelsea.png"), "--output", str(out)]
        argv += ["--style", str(images_dir / "great_wave.jpg")]
        argv += ["--average-decay", decay] if decay else []
        assert main(argv) == 0, capsys.readouterr().err
        outputs[decay] = np.asarray(Image.open(out), np.float64)
    assert outputs[None].shape == (21, 32, 3)  # chelsea is 451x300
    assert np.abs(outputs[None] - outputs["0"]).max() >= 1.0
