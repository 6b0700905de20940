"""Tests of nstjax.style_losses against float64 numpy written here from the papers' formulas.

Each reference below is its own implementation (loops, ``np.quantile``/``np.interp``, brute-force
patch search, matrix square roots by numpy's ``eigh``, the 1-D Wasserstein distance as the
integral of the squared difference of two quantile functions); the random directions of the
sliced loss are the one thing taken from JAX (its PRNG draws them). Gradients are compared with
central finite differences of the numpy references.
"""

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_flat, np_gram_loss, np_mean_std_loss
from PIL import Image

from nstjax import engine
from nstjax import style_losses as sl
from nstjax import style_mix as mix
from nstjax.batch import build, plan
from nstjax.errors import NstjaxError
from nstjax.run import Options, Run, validate_run

NAMES = ("gram", "mean_std", "gaussian_w2", "sliced_wasserstein", "histogram", "mrf")
KEY = jax.random.key(7)


def features(seed, h=5, w=6, c=4):
    """Non-negative random features (like rectified activations), some exact zeros."""
    x = np.random.default_rng(seed).normal(size=(h, w, c))
    return np.maximum(x + 0.3, 0.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Independent float64 references


def np_sqrtm(a):
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def np_w2_loss(f, s):
    x, y = np_flat(f), np_flat(s)
    m1, m2 = x.mean(0), y.mean(0)
    c1 = (x - m1).T @ (x - m1) / len(x)
    c2 = (y - m2).T @ (y - m2) / len(y)
    r2 = np_sqrtm(c2)
    w2 = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * np_sqrtm(r2 @ c1 @ r2))
    return w2 / x.shape[1]


def np_directions(key, count, c):
    d = np.asarray(jax.random.normal(key, (count, c), jnp.float32), np.float64)
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def np_sliced_loss(f, s, key, count=None):
    x, y = np_flat(f), np_flat(s)
    d = np_directions(key, count or x.shape[1], x.shape[1])
    px, py = np.sort(x @ d.T, axis=0), np.sort(y @ d.T, axis=0)
    n, m = len(px), len(py)
    rows = [int(np.floor((i + 0.5) * m / n)) for i in range(n)]
    return np.mean((px - py[rows]) ** 2)


def np_w2_1d(a, b):
    """Exact W2^2 of two 1-D empirical measures: integral over t of (Qa(t) - Qb(t))^2."""
    a, b = np.sort(a), np.sort(b)
    cuts = np.union1d(np.arange(len(a) + 1) / len(a), np.arange(len(b) + 1) / len(b))
    mid = (cuts[:-1] + cuts[1:]) / 2
    qa = a[np.minimum((mid * len(a)).astype(int), len(a) - 1)]
    qb = b[np.minimum((mid * len(b)).astype(int), len(b) - 1)]
    return np.sum(np.diff(cuts) * (qa - qb) ** 2)


def np_histogram_remap(f, s, quantiles=256):
    x, y = np_flat(f), np_flat(s)
    p = (np.arange(quantiles) + 0.5) / quantiles
    table = np.quantile(y, p, axis=0, method="hazen")
    out = np.empty_like(x)
    n = len(x)
    for c in range(x.shape[1]):
        order = np.argsort(x[:, c], kind="stable")
        out[order, c] = np.interp((np.arange(n) + 0.5) / n, p, table[:, c])
    return out


def np_patches(f, k=3):
    f = np.asarray(f, np.float64)
    h, w, _ = f.shape
    return np.array(
        [f[i : i + k, j : j + k].ravel() for i in range(h - k + 1) for j in range(w - k + 1)]
    )


def np_mrf(f, s):
    """(nearest indices by cosine similarity, mean squared patch distance)."""
    p, q = np_patches(f), np_patches(s)
    cos = (p @ q.T) / np.outer(np.linalg.norm(p, axis=1), np.linalg.norm(q, axis=1))
    nn = np.argmax(cos, axis=1)
    return nn, np.mean((p - q[nn]) ** 2)


REFERENCES = {
    "gram": lambda f, s: np_gram_loss(f, s),
    "mean_std": lambda f, s: np_mean_std_loss(f, s),
    "gaussian_w2": lambda f, s: np_w2_loss(f, s),
    "sliced_wasserstein": lambda f, s: np_sliced_loss(f, s, KEY),
    "histogram": lambda f, s: np.mean((np_flat(f) - np_histogram_remap(f, s)) ** 2),
    "mrf": lambda f, s: np_mrf(f, s)[1],
}


@functools.cache
def _jitted_score(name):
    loss = sl.STYLE_LOSSES[name]
    return jax.jit(lambda f, s, k: loss.score(f, loss.target(s), k))


def score(name, f, s, key=KEY):
    """``name``'s score of features ``f`` against the target of style features ``s``."""
    return _jitted_score(name)(f, s, key)


# --------------------------------------------------------------------------------------------
# Values and gradients


def test_registry_has_the_family():
    assert tuple(sl.STYLE_LOSSES) == NAMES
    assert [n for n, loss in sl.STYLE_LOSSES.items() if loss.needs_key] == ["sliced_wasserstein"]


@pytest.mark.parametrize("name", NAMES)
def test_value_matches_numpy_in_float32_and_bfloat16(name):
    f, s = features(1), features(2, h=6, w=5)
    loss = sl.STYLE_LOSSES[name]

    @jax.jit
    def both(f, s):
        low = [x.astype(jnp.bfloat16) for x in (f, s)]
        return loss.score(f, loss.target(s), KEY), loss.score(low[0], loss.target(low[1]), KEY)

    value, value_bf16 = both(f, s)
    assert value.dtype == value_bf16.dtype == jnp.float32
    np.testing.assert_allclose(float(value), REFERENCES[name](f, s), rtol=2e-4)
    np.testing.assert_allclose(float(value_bf16), REFERENCES[name](f, s), rtol=5e-2)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_finite_differences_of_numpy(name):
    # no ties (a tie's ranks flip under the perturbation, moving the histogram remap)
    f = features(3, h=4, w=5, c=3)
    f += np.random.default_rng(3).uniform(0.01, 0.02, f.shape).astype(np.float32)
    s = features(4, h=5, w=4, c=3)
    loss = sl.STYLE_LOSSES[name]
    grad = jax.jit(jax.grad(lambda x, s: loss.score(x, loss.target(s), KEY)))(f, s)
    grad = np.asarray(grad, np.float64)
    rng = np.random.default_rng(5)
    for _ in range(3):
        v = rng.normal(size=f.shape)
        h = 1e-4
        fd = (REFERENCES[name](f + h * v, s) - REFERENCES[name](f - h * v, s)) / (2 * h)
        np.testing.assert_allclose(np.sum(grad * v), fd, rtol=2e-3, atol=1e-7)


def test_masked_mean_std_matches_numpy():
    f, s = features(6), features(7)
    mask = np.random.default_rng(8).random((5, 6)).astype(np.float32)
    loss = sl.STYLE_LOSSES["mean_std"]
    value = loss.score(jnp.asarray(f), loss.target(jnp.asarray(s)), None, jnp.asarray(mask))
    np.testing.assert_allclose(float(value), np_mean_std_loss(f, s, mask), rtol=1e-4)


def _with_moments(mean, variances, n=40, seed=0):
    """Features ``[n, 1, C]`` whose population mean and covariance are exactly ``mean`` and
    ``diag(variances)``: orthonormal columns orthogonal to the ones vector, scaled."""
    c = len(mean)
    a = np.random.default_rng(seed).normal(size=(n, c))
    q, _ = np.linalg.qr(np.concatenate([np.ones((n, 1)), a], axis=1))
    z = q[:, 1:] * np.sqrt(n)  # zero mean, identity population covariance
    return (np.asarray(mean) + z * np.sqrt(variances)).reshape(n, 1, c).astype(np.float32)


def test_gaussian_w2_closed_form_for_diagonal_covariances():
    mu1, mu2 = np.array([1.0, 2.0, 0.5]), np.array([0.0, 2.5, 1.5])
    a, b = np.array([4.0, 1.0, 0.25]), np.array([1.0, 9.0, 0.25])
    f, s = _with_moments(mu1, a, seed=1), _with_moments(mu2, b, seed=2)
    expected = (np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)) / 3
    np.testing.assert_allclose(float(score("gaussian_w2", f, s)), expected, rtol=1e-4)


def test_gaussian_w2_is_zero_for_identical_statistics():
    f = features(9)
    shuffled = np.random.default_rng(0).permutation(f.reshape(-1, 4)).reshape(f.shape)
    target_scale = np.var(f)
    assert abs(float(score("gaussian_w2", shuffled, f))) < 1e-5 * target_scale


def test_gaussian_w2_gradient_is_finite_with_a_dead_channel():
    f, s = features(10), features(11)
    f[..., 2] = 0.0
    s[..., 2] = 0.0  # both covariances singular
    loss = sl.STYLE_LOSSES["gaussian_w2"]
    grad = jax.jit(jax.grad(lambda x, s: loss.score(x, loss.target(s))))(f, s)
    assert np.all(np.isfinite(np.asarray(grad)))


@pytest.mark.parametrize("shape", [(6, 5), (12, 10)])  # equal counts, and 4x the style's
def test_sliced_one_direction_is_the_exact_1d_w2(shape):
    f, s = features(12, *shape), features(13, 6, 5)
    one_direction = functools.partial(sl.sliced_wasserstein_score, num_directions=1)
    value = jax.jit(lambda f, s: one_direction(f, sl.sliced_wasserstein_target(s), KEY))(f, s)
    d = np_directions(KEY, 1, 4)[0]
    np.testing.assert_allclose(float(value), np_w2_1d(np_flat(f) @ d, np_flat(s) @ d), rtol=1e-4)


def test_sliced_directions_change_with_the_key():
    f, s = features(14), features(15)
    assert float(score("sliced_wasserstein", f, s, KEY)) != float(
        score("sliced_wasserstein", f, s, jax.random.fold_in(KEY, 1))
    )


def test_histogram_remap_matches_numpy():
    f, s = features(16, 7, 9), features(17, 5, 6)
    f[0, :3] = 0.0  # ties, broken by position as numpy's stable sort does
    remapped = jax.jit(lambda f, s: sl.histogram_remap(f, sl.histogram_target(s)))(f, s)
    np.testing.assert_allclose(np.asarray(remapped), np_histogram_remap(f, s), rtol=1e-5, atol=1e-6)


def test_mrf_finds_the_planted_nearest_patches():
    style = features(18, 6, 7, 3) + 0.1
    # the output is 2.5x a crop of the style: each output patch is a scaled copy of one style
    # patch (nearest by correlation, not by distance), plus noise too small to change the match
    rng = np.random.default_rng(19)
    out = 2.5 * style[1:6, 2:7] + 1e-3 * rng.random((5, 5, 3)).astype(np.float32)
    nearest = jax.jit(lambda f, s: sl.mrf_nearest(sl.patches(f), sl.mrf_target(s), chunk=4))
    found = nearest(out, style)
    planted = [(i + 1) * 5 + (j + 2) for i in range(3) for j in range(3)]  # style is 4x5 patches
    np.testing.assert_array_equal(np.asarray(found), planted)
    np.testing.assert_array_equal(np.asarray(found), np_mrf(out, style)[0])


# --------------------------------------------------------------------------------------------
# Batching, padding, dtypes


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_runs_equals_each_alone(name):
    loss = sl.STYLE_LOSSES[name]
    outs = [features(20 + r) for r in range(3)]
    styles = [features(30 + r, h=5 + r, w=6) for r in range(3)]  # point sets of different sizes
    targets = mix.stack([loss.target(jnp.asarray(s)) for s in styles])
    keys = jax.random.split(KEY, 3)
    batched = jax.jit(jax.vmap(loss.score))(jnp.asarray(np.stack(outs)), targets, keys)
    one = jax.jit(loss.score)
    for r in range(3):
        alone = one(jnp.asarray(outs[r]), jax.tree.map(lambda x, r=r: x[r], targets), keys[r])
        assert np.asarray(batched[r]).tobytes() == np.asarray(alone).tobytes()
    unpadded = one(jnp.asarray(outs[0]), loss.target(jnp.asarray(styles[0])), keys[0])
    np.testing.assert_allclose(float(batched[0]), float(unpadded), rtol=1e-5)


# --------------------------------------------------------------------------------------------
# The combinator and the spec


def test_style_loss_is_the_weighted_sum():
    layers = {"conv1_1": (6, 6, 4), "conv3_1": (4, 4, 3)}  # positions 0 and 4 of the 16
    out = {n: features(50 + i, *shape) for i, (n, shape) in enumerate(layers.items())}
    sty = {n: features(60 + i, *shape) for i, (n, shape) in enumerate(layers.items())}
    names = ("mrf", "sliced_wasserstein", "gram")
    program = mix.StyleProgram(names, (tuple(layers),) * 3)
    targets = jax.jit(mix.targets_of, static_argnums=1)(sty, program)
    layer_weights = np.zeros(16, np.float32)
    layer_weights[[0, 4]] = [0.7, 1.9]
    loss_weights = np.array([0.5, 2.0, 3.0], np.float32)
    weights = mix.StyleWeights(1.0, layer_weights, loss_weights, jax.random.key_data(KEY))
    step = 5
    value = jax.jit(mix.style_loss, static_argnums=0)(program, out, targets, weights, None, step)
    expected = 0.0
    key = jax.random.fold_in(KEY, step)
    for lw, layer, position in ((0.7, "conv1_1", 0), (1.9, "conv3_1", 4)):
        f, s = out[layer], sty[layer]
        expected += 0.5 * lw * np_mrf(f, s)[1]
        # the second stream: numbered among the losses other than "gram"
        expected += 2.0 * lw * np_sliced_loss(f, s, jax.random.fold_in(key, 1 * 16 + position))
        expected += 3.0 * lw * np_gram_loss(f, s)
    np.testing.assert_allclose(float(value), expected, rtol=1e-4)


def test_style_loss_rejects_masks_for_losses_without_them():
    f = {"conv1_1": jnp.asarray(features(70))}
    program = mix.StyleProgram(("histogram",), (("conv1_1",),))
    targets = mix.targets_of(f, program)
    masks = {"conv1_1": jnp.ones((1, 5, 6))}
    with pytest.raises(NstjaxError, match="histogram.*does not support masks"):
        mix.style_loss(program, f, targets, mix.StyleWeights(1.0, jnp.ones(16)), masks)


def test_parse_style_loss():
    assert mix.parse_style_loss("gram") == {"gram": 1.0}
    assert mix.parse_style_loss(" gram:1, sliced_wasserstein:0.5") == {
        "gram": 1.0,
        "sliced_wasserstein": 0.5,
    }
    assert mix.parse_style_loss({"mrf": 2}) == {"mrf": 2.0}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("gramm", "unknown loss 'gramm' .* one of gram, mean_std, gaussian_w2"),
        ("gram:x", "weight 'x' of 'gram' is not a number"),
        ("gram:1,gram:2", "'gram' given twice"),
        ("mrf:-1", "must be finite and >= 0"),
        ("gram,", "unknown loss ''"),
    ],
)
def test_parse_style_loss_errors(spec, message):
    with pytest.raises(NstjaxError, match=message):
        mix.parse_style_loss(spec)


# --------------------------------------------------------------------------------------------
# Through the engine: a batch mixing losses, weights as data, errors before compiling

ENGINE_LAYERS = {"content_layers": ("conv2_1",), "style_layers": ("conv1_1", "conv2_1")}
MIXED = (
    Run(style_loss="gram", **ENGINE_LAYERS),
    Run(style_loss="sliced_wasserstein", seed=3, **ENGINE_LAYERS),
    Run(style_loss="gram:1,mean_std:2", **ENGINE_LAYERS),
)


@pytest.fixture(scope="module")
def mixed(tiny_params):
    """The mixed batch's program, images, and its result after 2 Adam steps."""
    rng = np.random.default_rng(0)
    contents = [rng.random((32, 32, 3)).astype(np.float32)]
    styles = [rng.random((40, 32, 3)).astype(np.float32)]
    program = plan.program_for(MIXED, Options(steps=2), "xla")

    def optimize(runs, program=program):
        built = build.build(tiny_params, program, runs, contents, styles)
        return built, engine.optimize(tiny_params, program, built, 2)

    return program, optimize, optimize(MIXED)[1]


def test_program_holds_the_losses_some_run_uses(mixed):
    program, _, _ = mixed
    assert program.style_losses == ("gram", "mean_std", "sliced_wasserstein")
    default = plan.program_for([Run()], Options(), "xla")
    assert default.style_losses == ("gram",)  # a Gram-only batch: today's program


def test_each_run_of_a_mixed_batch_gets_what_it_gets_alone(mixed):
    """Run i of the mixed batch is bit-identical to a batch of three copies of run i."""
    _, optimize, out = mixed
    for i, run in enumerate(MIXED):
        alone = optimize([run] * 3)[1]
        assert out.pixels[i].tobytes() == alone.pixels[0].tobytes(), run.style_loss
        assert out.history[:, i].tobytes() == alone.history[:, 0].tobytes()
    assert not np.array_equal(out.pixels[0], out.pixels[1])


def test_changing_a_loss_weight_does_not_recompile(mixed):
    program, optimize, out = mixed
    compiled = engine.train_step._cache_size()
    reweighted = [dataclasses.replace(r, style_loss={"gram": 0.5, "mean_std": 0}) for r in MIXED]
    built, again = optimize(reweighted)
    assert engine.train_step._cache_size() == compiled
    assert built.hyper.style_loss_weights.tolist() == [[0.5, 0.0, 0.0]] * 3
    assert not np.array_equal(again.pixels[2], out.pixels[2])


@pytest.mark.parametrize(
    "run, message",
    [
        (Run(style_loss="gramm"), "unknown loss 'gramm' (expected NAME[:WEIGHT],... with NAME"),
        (Run(style={0: 1.0, 1: 1.0}, style_loss="mrf"), "'mrf' takes one style image"),
        (
            Run(style={0: 1.0, 1: 1.0}, style_loss="histogram", masks=[np.ones((4, 4))] * 2),
            "'histogram' does not support masks",
        ),
    ],
)
def test_bad_style_loss_runs_are_rejected(run, message):
    with pytest.raises(NstjaxError, match=re.escape(message)):
        validate_run(run, 1, 2)


def test_cli_style_loss_is_a_one_line_error_before_compiling(tmp_path, capsys, monkeypatch):
    import nstjax.vgg
    from nstjax.cli import main

    monkeypatch.setattr(nstjax.vgg, "load_params", lambda *a, **k: pytest.fail("loaded weights"))
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    argv = ["stylize", "--content", str(image), "--style", str(image), "--output"]
    for spec, fragment in (("gram,mrff", "unknown loss 'mrff'"), ("gram:", "weight '' of")):
        assert main([*argv, str(tmp_path / "o.png"), "--style-loss", spec]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("nstjax: error: --style-loss"), err
        assert fragment in err and "mean_std, gaussian_w2, sliced_wasserstein" in err, err


def test_sweep_axis_and_config_field():
    from nstjax.sweep import config, expand

    cfg = config.default_config()
    assert cfg.loss.style_loss == Run().style_loss == "gram"
    cfg.sweep.axes = {"style_loss": ["gram", "gram:1,sliced_wasserstein:0.5"]}
    expansion, problems = expand.expand(cfg, ["c.png"], ["s.png"], {"c.png": (32, 32)})
    assert problems == []
    assert [r.values["style_loss"] for r in expansion.runs] == cfg.sweep.axes["style_loss"]
    cfg.sweep.axes = {"style_loss": ["gram", "bogus"]}
    (problem,) = expand.expand(cfg, ["c.png"], ["s.png"], {"c.png": (32, 32)})[1]
    assert "unknown loss 'bogus'" in problem and "sliced_wasserstein" in problem


def test_guided_mean_std_through_the_engine(tiny_params):
    """Masks with a loss that supports them: one target per region, a finite loss."""
    rng = np.random.default_rng(1)
    contents = [rng.random((32, 32, 3)).astype(np.float32)]
    styles = [rng.random((32, 32, 3)).astype(np.float32) for _ in range(2)]
    left = np.zeros((32, 32), np.float32)
    left[:, :16] = 1.0
    run = Run(style={0: 1.0, 1: 1.0}, masks=[left, 1 - left], style_loss="gram:1,mean_std:1")
    run = dataclasses.replace(run, **ENGINE_LAYERS)
    program = plan.program_for([run], Options(), "xla")
    assert program.guided and program.style_losses == ("gram", "mean_std")
    built = build.build(tiny_params, program, [run], contents, styles)
    mean = built.targets.style["mean_std"]["conv2_1"]["mean"]
    assert mean.shape[:2] == (1, 2) and built.targets.masks["conv2_1"].shape[:2] == (1, 2)
    terms = engine.evaluate(tiny_params, built.pixels, built.hyper, built.targets, program=program)
    assert np.all(np.isfinite(np.asarray(terms))) and float(terms[0, 2]) > 0
