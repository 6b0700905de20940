"""The research controls (issue 6) against computations made independently of the library.

Mechanics only: a tiny random VGG (``tiny_params``) on 16-32 px images. Every expectation is
computed here from first principles -- BT.601 colour formulas, ``np.cov``, Grams of features
taken straight from :func:`nstjax.vgg.features`, numpy means -- and compared with what
:func:`nstjax.api.stylize_batch` reports in its per-step history (row 0 is the loss of the
initial image) or returns as images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax import api, color, losses, schedule, style_mix, vgg
from nstjax.architecture import LAYER_INDEX, LAYER_NAMES
from nstjax.errors import NstjaxError
from nstjax.image import save_image
from nstjax.resample import long_side_shape, resize, resize_long_side

H, W = 32, 24  # output shape for most runs (portrait, so long-side logic is exercised)
CONTENT_LAYERS = ("conv2_2",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1")
LAYERS = ("conv1_1", "conv2_1", "conv2_2", "conv3_1")
# Column of each loss term in Result.history / engine.METRICS.
TOTAL, CONTENT, STYLE, TV = range(4)


# --- inputs -------------------------------------------------------------------------------


def _smooth(seed: int, shape: tuple[int, int], cells: int = 4) -> np.ndarray:
    """A smooth random colour image in [0.1, 0.9]: coarse noise upsampled (structured, unclipped)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((cells, cells, 3)).astype(np.float32)
    return 0.1 + 0.8 * resize(coarse, shape)


def _stripes(shape: tuple[int, int], period: int, colours: np.ndarray) -> np.ndarray:
    """Vertical stripes alternating between two RGB ``colours`` ``[2, 3]``."""
    index = (np.arange(shape[1]) // (period // 2)) % 2
    return np.broadcast_to(colours[index][None], (*shape, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {
        "content": _smooth(1, (H, W)),
        # Styles of another shape than the output, so that resizing is part of the target.
        "style0": _stripes((40, 30), 4, np.array([[0.9, 0.2, 0.1], [0.1, 0.2, 0.9]])),
        "style1": np.clip(0.5 + 0.25 * rng.standard_normal((36, 36, 3)), 0, 1).astype(np.float32),
    }


def _run(**fields) -> api.Run:
    """A Run on this module's layers (one program, so one compilation, for most tests)."""
    defaults = dict(
        content_layers=CONTENT_LAYERS,
        style_layers=STYLE_LAYERS,
        style_weight=10.0,
        tv_weight=1e-3,
        learning_rate=2.0,
    )
    return api.Run(**{**defaults, **fields})


# --- independent expectations -------------------------------------------------------------


def _ycbcr(image: np.ndarray) -> np.ndarray:
    """BT.601 full-range Y, Cb, Cr of RGB in [0, 1] (offsets of 0.5 on Cb, Cr included)."""
    r, g, b = (np.asarray(image, np.float64)[..., i] for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 0.5 + (b - y) / 1.772
    cr = 0.5 + (r - y) / 1.402
    return np.stack([y, cb, cr], axis=-1)


def _unclipped(image: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``[H, W]`` True where no channel sits at 0 or 1 (so no clipping touched the pixel)."""
    return np.all((image > eps) & (image < 1 - eps), axis=-1)


def _features(params, image: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
    feats = vgg.features(params, jnp.asarray(image, jnp.float32), tuple(layers))
    return {name: np.asarray(f, np.float64) for name, f in feats.items()}


def _np_gram(f: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``(m F)^T (m F) / (sum(m^2) C)`` in float64; ``m = 1`` without a mask."""
    h, w, c = f.shape
    m = np.ones((h, w)) if mask is None else np.asarray(mask, np.float64)
    x = (f * m[..., None]).reshape(h * w, c)
    return x.T @ x / (max(np.sum(m * m), 1.0) * c)


def _style_grams(params, image: np.ndarray) -> dict[str, np.ndarray]:
    return {n: _np_gram(f) for n, f in _features(params, image, STYLE_LAYERS).items()}


def _layer_weights(layers: Sequence[str] | Mapping[str, float]) -> dict[str, float]:
    return dict(layers) if isinstance(layers, Mapping) else {n: 1 / len(layers) for n in layers}


def _expected_terms(
    params,
    image: np.ndarray,
    content: np.ndarray,
    regions: Sequence[tuple[dict[str, np.ndarray], np.ndarray | None]],
    content_layers: Sequence[str] = CONTENT_LAYERS,
    style_layers: Sequence[str] = STYLE_LAYERS,
) -> tuple[float, float, float]:
    """(content, style, tv) terms of ``image`` computed by hand.

    Args:
        regions: ``(target Grams by layer, mask at the output resolution or None)`` per region;
            each region's loss is the MSE of its (guided) Gram and its target.
    """
    layers = tuple(dict.fromkeys([*content_layers, *style_layers]))
    f = _features(params, image, layers)
    p = _features(params, content, content_layers)
    content_term = sum(
        w * np.mean((f[n] - p[n]) ** 2) for n, w in _layer_weights(content_layers).items()
    )
    style_term = 0.0
    for name, w in _layer_weights(style_layers).items():
        factor = 2 ** (int(name[4]) - 1)
        for target, mask in regions:
            m = None if mask is None else _block_mean(mask, factor)
            style_term += w * np.mean((_np_gram(f[name], m) - target[name]) ** 2)
    x = np.asarray(image, np.float64) * 255.0
    tv_term = (np.sum(np.diff(x, axis=0) ** 2) + np.sum(np.diff(x, axis=1) ** 2)) / (
        x.shape[0] * x.shape[1]
    )
    return float(content_term), float(style_term), float(tv_term)


def _block_mean(mask: np.ndarray, factor: int) -> np.ndarray:
    h, w = mask.shape[0] // factor, mask.shape[1] // factor
    return mask[: h * factor, : w * factor].reshape(h, factor, w, factor).mean(axis=(1, 3))


# --- colour --------------------------------------------------------------------------------


@pytest.mark.parametrize("space", ["ycbcr", "yiq"])
def test_luma_chroma_round_trip(space):
    x = np.random.default_rng(0).random((5, 7, 3))
    np.testing.assert_allclose(
        color.from_luma_chroma(color.to_luma_chroma(x, space), space), x, atol=1e-12
    )


def test_ycbcr_is_bt601():
    """The library's YCbCr is BT.601 (ours, with its 0.5 chroma offsets dropped)."""
    x = np.random.default_rng(1).random((6, 4, 3))
    ours = _ycbcr(x) - np.array([0.0, 0.5, 0.5])
    np.testing.assert_allclose(color.to_luma_chroma(x, "ycbcr"), ours, atol=1e-5)


def test_luminance_transfer_keeps_content_chroma_and_stylised_luma():
    stylised, content = _smooth(2, (20, 20)), _smooth(3, (20, 20))
    out = color.luminance_transfer(stylised, content)
    assert out.shape == content.shape and out.dtype == np.float32
    keep = _unclipped(out)
    assert keep.mean() > 0.5, "the test images should mostly stay in range"
    ycc, ycc_content, ycc_stylised = _ycbcr(out), _ycbcr(content), _ycbcr(stylised)
    np.testing.assert_allclose(ycc[keep][:, 1:], ycc_content[keep][:, 1:], atol=1e-6)
    np.testing.assert_allclose(ycc[keep][:, 0], ycc_stylised[keep][:, 0], atol=1e-6)
    assert np.abs(ycc_stylised[..., 1:] - ycc_content[..., 1:]).max() > 0.05  # not trivial


def test_match_histogram_matches_mean_and_covariance():
    rng = np.random.default_rng(3)
    mix = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    style = (0.2 + 0.6 * rng.random((30, 40, 3)) @ mix).astype(np.float32)
    content = _smooth(4, (25, 25))
    matched = color.match_histogram(style, content)
    assert matched.shape == style.shape
    s, c = matched.reshape(-1, 3).astype(np.float64), content.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(s.mean(0), c.mean(0), atol=1e-4)
    np.testing.assert_allclose(np.cov(s, rowvar=False), np.cov(c, rowvar=False), atol=1e-4)
    # still the style's picture: an affine map of its colours, perfectly correlated per pixel
    assert abs(np.corrcoef(style[..., 0].ravel(), matched[..., 0].ravel())[0, 1]) > 0.3


def test_stylize_luminance_keeps_content_chroma(tiny_params, images):
    runs = [_run(colors="style", style_weight=1e3), _run(colors="luminance", style_weight=1e3)]
    plain, kept = api.stylize_batch(
        tiny_params, [images["content"]], [images["style0"]], runs, steps=8
    )
    content = images["content"]
    keep = _unclipped(kept.image) & _unclipped(plain.image)
    assert keep.mean() > 0.5
    ycc, ycc_content, ycc_plain = _ycbcr(kept.image), _ycbcr(content), _ycbcr(plain.image)
    np.testing.assert_allclose(ycc[keep][:, 1:], ycc_content[keep][:, 1:], atol=1e-5)
    # the luminance is the plain transfer's: same optimisation, colours swapped afterwards
    np.testing.assert_allclose(ycc[keep][:, 0], ycc_plain[keep][:, 0], atol=1e-5)
    assert np.abs(ycc_plain[..., 1:] - ycc_content[..., 1:]).max() > 0.02  # the style did recolour


def test_stylize_histogram_matches_the_style_target(tiny_params, images):
    content, style = images["content"], images["style0"]
    runs = [_run(colors="style"), _run(colors="histogram")]
    plain, matched = api.stylize_batch(tiny_params, [content], [style], runs, steps=1)
    at_output = resize(style, long_side_shape(style.shape, max(H, W)))
    recoloured = color.match_histogram(at_output, content)
    for result, target in ((plain, at_output), (matched, recoloured)):
        expected = _expected_terms(
            tiny_params, content, content, [(_style_grams(tiny_params, target), None)]
        )
        np.testing.assert_allclose(result.history[0, STYLE], expected[1], rtol=1e-4)
    assert abs(matched.history[0, STYLE] / plain.history[0, STYLE] - 1) > 0.05


# --- blends, scale ------------------------------------------------------------------------


def test_style_blend(tiny_params, images):
    content, styles = images["content"], [images["style0"], images["style1"]]
    runs = [
        _run(style=0),
        _run(style={0: 1.0, 1: 0.0}),
        _run(style={0: 0.5, 1: 0.5}),
        _run(style={0: 3.0, 1: 3.0}),  # weights are normalised
    ]
    alone, one_zero, half, unnormalised = api.stylize_batch(
        tiny_params, [content], styles, runs, steps=4
    )
    np.testing.assert_allclose(one_zero.image, alone.image, rtol=0, atol=1e-6)
    np.testing.assert_allclose(one_zero.history, alone.history, rtol=1e-6)
    np.testing.assert_allclose(unnormalised.history, half.history, rtol=1e-6)
    grams = [
        _style_grams(tiny_params, resize(s, long_side_shape(s.shape, max(H, W)))) for s in styles
    ]
    mean = {n: (grams[0][n] + grams[1][n]) / 2 for n in STYLE_LAYERS}
    expected = _expected_terms(tiny_params, content, content, [(mean, None)])
    np.testing.assert_allclose(half.history[0, STYLE], expected[1], rtol=1e-4)
    # and the blended target is neither style alone
    only0 = _expected_terms(tiny_params, content, content, [(grams[0], None)])
    assert abs(only0[1] / expected[1] - 1) > 0.05


@pytest.mark.parametrize("scale", [0.5, 1.5])
def test_style_scale_resizes_the_style_relative_to_the_output(tiny_params, images, scale):
    content, style = images["content"], images["style0"]
    runs = [_run(style_scale=scale), _run(style_scale=1.0)]
    scaled, plain = api.stylize_batch(tiny_params, [content], [style], runs, steps=1)
    size = round(scale * max(H, W))
    shape = long_side_shape(style.shape, size)
    assert max(shape) == size
    expected = _expected_terms(
        tiny_params, content, content, [(_style_grams(tiny_params, resize(style, shape)), None)]
    )
    np.testing.assert_allclose(scaled.history[0, STYLE], expected[1], rtol=1e-4)
    assert abs(scaled.history[0, STYLE] / plain.history[0, STYLE] - 1) > 0.05


# --- masks (guided Grams) -----------------------------------------------------------------


def _halves(shape: tuple[int, int]) -> list[np.ndarray]:
    left = np.zeros(shape, np.float32)
    left[:, : shape[1] // 2] = 1.0
    return [left, 1.0 - left]


def test_guided_gram_loss_matches_numpy(tiny_params, images):
    """The guided Gram loss (style_mix.style_loss with masks) = sum over regions of
    MSE(guided Gram, target)."""
    feats = _features(tiny_params, images["content"], STYLE_LAYERS)
    rng = np.random.default_rng(5)
    masks = {n: rng.random((2, *f.shape[:2])) for n, f in feats.items()}
    targets = {n: rng.random((2, f.shape[-1], f.shape[-1])) for n, f in feats.items()}
    weights = np.zeros(len(LAYER_NAMES), np.float32)
    for n, w in zip(STYLE_LAYERS, (0.2, 0.3, 0.5)):
        weights[LAYER_INDEX[n]] = w
    got = style_mix.style_loss(
        style_mix.StyleProgram(("gram",), (tuple(feats),)),
        {n: jnp.asarray(f, jnp.float32) for n, f in feats.items()},
        {"gram": {n: jnp.asarray(t, jnp.float32) for n, t in targets.items()}},
        style_mix.StyleWeights(jnp.float32(1.0), jnp.asarray(weights)),
        {n: jnp.asarray(m, jnp.float32) for n, m in masks.items()},
    )
    expected = sum(
        weights[LAYER_INDEX[n]]
        * sum(np.mean((_np_gram(feats[n], masks[n][k]) - targets[n][k]) ** 2) for k in range(2))
        for n in STYLE_LAYERS
    )
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_stylize_masks_loss_and_confinement(tiny_params, images):
    """Left half styled like style 0, right half like style 1 (guided Grams, Gatys et al. 2017)."""
    content = np.full((H, W, 3), 0.5, np.float32) + 0.02 * _smooth(6, (H, W))
    styles = [images["style0"], images["style1"]]
    masks = _halves((H, W))
    run = _run(
        style={0: 1.0, 1: 1.0}, masks=masks, content_weight=0.0, tv_weight=0.0, learning_rate=4.0
    )
    (result,) = api.stylize_batch(tiny_params, [content], styles, [run], steps=30)

    grams = [
        _style_grams(tiny_params, resize(s, long_side_shape(s.shape, max(H, W)))) for s in styles
    ]
    expected = _expected_terms(tiny_params, content, content, list(zip(grams, masks)))
    np.testing.assert_allclose(result.history[0, STYLE], expected[1], rtol=1e-4)
    assert result.history[-1, STYLE] < 0.5 * result.history[0, STYLE]

    def distances(image: np.ndarray) -> np.ndarray:
        """[region, style] relative distance of the region's guided Gram to each style's."""
        f = _features(tiny_params, image, STYLE_LAYERS)
        d = np.zeros((2, 2))
        for name in STYLE_LAYERS:
            factor = 2 ** (int(name[4]) - 1)
            for r, mask in enumerate(masks):
                g = _np_gram(f[name], _block_mean(mask, factor))
                for s in range(2):
                    d[r, s] += np.sum((g - grams[s][name]) ** 2) / np.sum(grams[s][name] ** 2)
        return d

    before, after = distances(content), distances(result.image)
    assert after[0, 0] < after[0, 1], f"left region nearer style 1: {after}"
    assert after[1, 1] < after[1, 0], f"right region nearer style 0: {after}"
    # it is the optimisation that did it: at the start one region was on the wrong side
    assert not (before[0, 0] < before[0, 1] and before[1, 1] < before[1, 0])


def test_masks_do_not_touch_runs_without_masks(tiny_params, images):
    """A masked run in the batch leaves an unmasked run as it is alone (targets padded)."""
    content, styles = images["content"], [images["style0"], images["style1"]]
    plain = _run(style={0: 0.5, 1: 0.5})
    guided = _run(style={0: 1.0, 1: 1.0}, masks=_halves((H, W)))
    mixed = api.stylize_batch(tiny_params, [content], styles, [plain, guided], steps=3)
    alone = api.stylize_batch(tiny_params, [content], styles, [plain, plain], steps=3)
    np.testing.assert_allclose(mixed[0].history, alone[0].history, rtol=1e-5)
    assert not np.allclose(mixed[1].history[0], mixed[0].history[0], rtol=1e-3)


# --- gradient normalisation ---------------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
def test_normalized_gradient_vjp(enabled):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    g = rng.standard_normal((4, 5, 3)).astype(np.float32)
    weight = np.float32(-2.5)
    out, vjp = jax.vjp(
        lambda v: losses.normalized_gradient(v, jnp.float32(weight), jnp.asarray(enabled)), x
    )
    np.testing.assert_array_equal(np.asarray(out), x)  # identity forward
    (back,) = vjp(jnp.asarray(g))
    g64 = g.astype(np.float64)
    expected = abs(weight) * g64 / (np.abs(g64).sum() + 1e-8) if enabled else g64
    np.testing.assert_allclose(np.asarray(back), expected, rtol=1e-6, atol=1e-9)


def test_normalize_gradients_is_per_run(tiny_params, images):
    contents, styles = [images["content"]], [images["style0"]]
    off, on = _run(), _run(normalize_gradients=True)
    mixed = api.stylize_batch(tiny_params, contents, styles, [off, on], steps=4)
    nobody = api.stylize_batch(tiny_params, contents, styles, [off, off], steps=4)
    np.testing.assert_array_equal(mixed[0].image, nobody[0].image)
    np.testing.assert_array_equal(mixed[0].history, nobody[0].history)
    np.testing.assert_array_equal(mixed[1].history[0], mixed[0].history[0])  # same start
    assert not np.allclose(mixed[1].image, mixed[0].image, atol=1e-3)


# --- multi-scale --------------------------------------------------------------------------


def test_multiscale_ends_at_size_and_starts_each_scale_from_the_last(tiny_params, images):
    content, style = _smooth(8, (48, 36)), images["style0"]
    run = _run(init="noise", seed=3)
    (result,) = schedule.stylize_multiscale(
        tiny_params, [content], [style], [run], [(16, 3), (32, 3)]
    )
    assert result.image.shape == (32, 24, 3)
    assert result.history.shape == (6, 4)
    assert result.run == run

    (coarse,) = schedule.stylize_multiscale(tiny_params, [content], [style], [run], [(16, 3)])
    assert coarse.image.shape == (16, 12, 3)
    np.testing.assert_allclose(result.history[:3], coarse.history, rtol=1e-6)
    fine_content = resize_long_side(content, 32)
    upsampled = resize(coarse.image, fine_content.shape[:2])
    target = [(_style_grams(tiny_params, resize(style, long_side_shape(style.shape, 32))), None)]
    expected = _expected_terms(tiny_params, upsampled, fine_content, target)
    weights = np.array([run.content_weight, run.style_weight, run.tv_weight])
    np.testing.assert_allclose(result.history[3, 1:], expected, rtol=1e-4)
    np.testing.assert_allclose(result.history[3, TOTAL], weights @ expected, rtol=1e-4)


def test_upscale_detail_adds_the_contents_detail_at_the_next_scale(tiny_params, images):
    content, style = _smooth(8, (48, 36), cells=12), images["style0"]  # detail finer than 16 px
    run = _run(init="noise", seed=3, upscale_detail=0.5)
    (coarse,) = schedule.stylize_multiscale(tiny_params, [content], [style], [run], [(16, 3)])
    (result,) = schedule.stylize_multiscale(
        tiny_params, [content], [style], [run], [(16, 3), (32, 3)]
    )
    fine_content = resize_long_side(content, 32)
    shape = fine_content.shape[:2]
    band = fine_content - resize(resize_long_side(content, 16), shape)
    assert np.abs(band).max() > 0.1  # there is detail to add
    start = np.clip(resize(coarse.image, shape) + 0.5 * band, 0.0, 1.0)
    target = [(_style_grams(tiny_params, resize(style, long_side_shape(style.shape, 32))), None)]
    expected = _expected_terms(tiny_params, start, fine_content, target)
    np.testing.assert_allclose(result.history[3, 1:], expected, rtol=1e-4)


def test_upscaled_start_with_all_the_detail_of_the_coarse_content_is_the_content():
    """The coarse content upsampled plus the whole band between the scales is the fine content
    (``up + (fine - up) = fine``), and no detail leaves the upsampled image."""
    content = _smooth(5, (60, 45), cells=15)
    coarse = resize_long_side(content, 20)
    band = schedule.detail_band(content, 20, 40)
    start = schedule.upscaled_start(coarse, band, 1.0)
    np.testing.assert_allclose(start, resize_long_side(content, 40), atol=1e-6)
    plain = schedule.upscaled_start(coarse, band, 0.0)
    assert np.abs(plain - start).max() > 0.05  # the band is not empty
    np.testing.assert_array_equal(plain, resize(coarse, start.shape[:2]))


# --- validation ---------------------------------------------------------------------------


def test_parse_schedule():
    assert schedule.parse_schedule("256:300, 512:200,1024:100") == [
        (256, 300),
        (512, 200),
        (1024, 100),
    ]
    assert schedule.parse_schedule("64:5") == [(64, 5)]


@pytest.mark.parametrize(
    "text", ["", "256", "256:", ":10", "a:b", "256:0", "0:10", "-64:5", "512:10,256:10", "64:5,"]
)
def test_parse_schedule_errors(text):
    with pytest.raises(NstjaxError, match="--multiscale"):
        schedule.parse_schedule(text)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        (dict(style={0: 1.0, 1: 1.0}, masks=[np.ones((4, 4))]), "masks"),
        (dict(style=0, masks=[np.ones((4, 4))] * 2), "masks"),
        (dict(colors="yuv"), "colors"),
        (dict(colors="luma"), "colors"),
        (dict(style_scale=0.0), "style-scale"),
        (dict(upscale_detail=-0.5), "upscale-detail"),
        (dict(upscale_detail=float("nan")), "upscale-detail"),
        (dict(style_scale=-1.0), "style-scale"),
        (dict(style_scale=float("nan")), "style-scale"),
        (dict(style_scale=float("inf")), "style-scale"),
        (dict(style={0: 1.0, 2: 1.0}), "style index 2"),
        (dict(style={0: 0.0, 1: 0.0}), "style blend"),
    ],
)
def test_validate_run_errors(fields, match):
    with pytest.raises(NstjaxError, match=match):
        api.validate_run(api.Run(**fields), n_contents=1, n_styles=2)


# --- CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--style-blend", "1"], "--style-blend: 1 weight(s) for 2 style(s)"),
        (["--style-blend", "1", "2", "3"], "--style-blend: 3 weight(s) for 2 style(s)"),
        (["--masks", "m0.png"], "--masks: 1 mask(s) for 2 style(s)"),
        (["--style-blend", "1", "1", "--masks", "m0.png"], "--masks: 1 mask(s) for 2 style(s)"),
        (["--multiscale", "64:5,32:5"], "--multiscale"),
        (["--style-scale", "0"], "--style-scale"),
    ],
)
def test_cli_control_errors(tmp_path, monkeypatch, capsys, extra, message):
    from nstjax.cli import main

    monkeypatch.setenv("NSTJAX_COMPILATION_CACHE", "0")
    monkeypatch.chdir(tmp_path)
    for name, seed in (("c.png", 0), ("s0.png", 1), ("s1.png", 2), ("m0.png", 3)):
        save_image(tmp_path / name, _smooth(seed, (8, 8)))
    argv = ["stylize", "--content", "c.png", "--style", "s0.png", "s1.png", "--output", "o.png"]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nstjax: error: "), err
    assert message in err
    assert not (tmp_path / "o.png").exists()


class _Recorder:
    """Stands in for api.run_plan / api.run_schedule: records the call, returns blanks."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[api.Run], dict]] = []

    def _results(self, contents, runs, steps: int) -> list[api.Result]:
        return [
            api.Result(
                run=r,
                image=np.zeros_like(contents[r.content]),
                history=np.zeros((steps, 4), np.float32),
                final=dict.fromkeys(("loss", "content", "style", "tv"), 0.0),
                failed_at=None,
                key=i,
            )
            for i, r in enumerate(runs)
        ]

    def batch(self, params, batches, contents, styles, **hooks):
        items = sorted((item for b in batches for item in b.items), key=lambda item: item.key)
        runs = [item.run for item in items]  # the planned runs, complete (masks included)
        steps = batches[0].steps
        self.calls.append(("batch", list(runs), {"steps": steps, "batches": batches}))
        return self._results(contents, runs, steps)

    def multiscale(self, params, plans, schedule, contents, styles, runs, **hooks):
        self.calls.append(("multiscale", list(runs), {"schedule": list(schedule), "plans": plans}))
        last = schedule[-1][0]
        scaled = [resize_long_side(c, last) for c in contents]
        return self._results(scaled, runs, sum(s for _, s in schedule))


@pytest.fixture
def recorded_cli(tmp_path, monkeypatch):
    """Runs `nstjax stylize` on two styles without weights or optimisation; returns the calls."""
    from nstjax.cli import main

    monkeypatch.setenv("NSTJAX_COMPILATION_CACHE", "0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(vgg, "load_params", lambda *a, **k: None)
    recorder = _Recorder()
    monkeypatch.setattr(api, "run_plan", recorder.batch)
    monkeypatch.setattr(schedule, "run_schedule", recorder.multiscale)
    for name, seed in (("c.png", 0), ("s0.png", 1), ("s1.png", 2), ("m0.png", 3), ("m1.png", 4)):
        save_image(tmp_path / name, _smooth(seed, (16, 16)))
    base = ["stylize", "--content", "c.png", "--style", "s0.png", "s1.png", "--overwrite"]

    def run(*extra: str) -> list[tuple[str, list[api.Run], dict]]:
        recorder.calls.clear()
        size = [] if "--multiscale" in extra else ["--size", "16"]  # the two are exclusive
        assert main([*base, *size, *extra]) == 0
        return recorder.calls

    return run


def test_cli_style_blend_and_masks_reach_the_run(recorded_cli):
    ((_, runs, _),) = recorded_cli("--output", "o.png", "--style-blend", "1", "3")
    assert len(runs) == 1 and runs[0].style_blend() == {0: 0.25, 1: 0.75}
    ((_, runs, _),) = recorded_cli("--output", "o.png", "--masks", "m0.png", "m1.png")
    assert len(runs) == 1 and len(runs[0].style_blend()) == 2
    assert runs[0].masks is not None and len(runs[0].masks) == 2
    assert all(np.ndim(m) == 2 for m in runs[0].masks)


def test_cli_per_run_controls_reach_the_run(recorded_cli):
    argv = ["--output", "out", "--colors", "luminance", "--normalize-gradients"]
    ((_, runs, _),) = recorded_cli(*argv, "--style-scale", "1.5")  # 0.5 leaves conv5_1 < 1 px
    assert len(runs) == 2
    for run in runs:
        assert run.colors == "luminance" and run.normalize_gradients
        assert run.style_scale == 1.5


def test_cli_multiscale_runs_the_schedule(recorded_cli, tmp_path):
    ((kind, _, options),) = recorded_cli("--output", "out", "--multiscale", "16:2,32:3")
    assert kind == "multiscale" and options["schedule"] == [(16, 2), (32, 3)]
    assert [[b.group.shape for b in p] for p in options["plans"]] == [[(16, 16)], [(32, 32)]]
    assert [[b.first_step for b in p] for p in options["plans"]] == [[0], [2]]
