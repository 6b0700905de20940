"""Tests of nstjax.losses and of the total loss of one run (engine.run_loss).

Every expected value is computed independently: float64 numpy written here from the formulas in
the module docstring (``gram = F^T F / (h w C)``, means of squared differences, squared total
variation averaged over pixels), values worked out by hand, or central finite differences. The
layer-weight vectors are indexed through a layer list spelled out here, not the package's own.

engine.run_loss is checked against a float64 numpy VGG written here (Caffe preprocessing, 3x3
SAME convolutions, ReLU, 2x2 max or average pooling) on a tiny random network, its value against
the numpy losses and its pixel gradient against central finite differences of that numpy loss.
Tests marked ``weights`` need ``$NSTJAX_WEIGHTS`` set to the real VGG-19 ``.h5``.
"""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax import engine, losses, style_mix, vgg

# The 16 conv layers of VGG-19 in order (Simonyan & Zisserman, configuration E): the layer-weight
# vectors are indexed by position in this list.
VGG19_LAYERS = (
    "conv1_1", "conv1_2",
    "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4",
    "conv5_1", "conv5_2", "conv5_3", "conv5_4",
)  # fmt: skip


def layer_vector(weights: dict[str, float]) -> np.ndarray:
    """A [16] layer-weight vector with the given layers' weights, zero elsewhere."""
    vec = np.zeros(16, np.float32)
    for name, value in weights.items():
        vec[VGG19_LAYERS.index(name)] = value
    return vec


# --------------------------------------------------------------------------------------------
# The independent float64 numpy losses


def np_gram(features, mask=None) -> np.ndarray:
    f = np.asarray(features, np.float64)
    h, w, c = f.shape
    f = f.reshape(h * w, c)
    if mask is None:
        return f.T @ f / (h * w * c)
    m = np.asarray(mask, np.float64).reshape(h * w, 1)
    mf = m * f
    return mf.T @ mf / (np.sum(m * m) * c)


def np_mse(a, b) -> float:
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(np.mean(d * d))


def np_tv(pixels) -> float:
    x = np.asarray(pixels, np.float64)
    h, w, _ = x.shape
    dy = np.diff(x, axis=0)
    dx = np.diff(x, axis=1)
    return float((np.sum(dy**2) + np.sum(dx**2)) / (h * w))


def np_content(features, targets, layer_weights) -> float:
    return sum(
        float(layer_weights[VGG19_LAYERS.index(n)]) * np_mse(features[n], targets[n])
        for n in targets
    )


def np_style(features, target_grams, layer_weights, masks=None) -> float:
    total = 0.0
    for name, target in target_grams.items():
        weight = float(layer_weights[VGG19_LAYERS.index(name)])
        if masks is None:
            total += weight * np_mse(np_gram(features[name]), target)
        else:
            total += weight * sum(
                np_mse(np_gram(features[name], m), t) for m, t in zip(masks[name], target)
            )
    return total


def assert_close(got, want, rtol=1e-5):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = np.abs(want).max()
    assert scale > 0, "reference is all zero: the comparison would be vacuous"
    err = np.abs(got - want).max() / scale
    assert err < rtol, f"relative error {err:.2e} (tolerance {rtol:.0e})"


# --------------------------------------------------------------------------------------------
# gram


def test_gram_matches_numpy():
    feats = np.random.default_rng(0).normal(size=(5, 7, 6)).astype(np.float32)
    got = losses.gram(jnp.asarray(feats))
    assert got.shape == (6, 6) and got.dtype == jnp.float32
    assert_close(got, np_gram(feats))


def test_gram_hand_value():
    # h=1, w=2, C=2: positions (1, 2) and (3, 4). F^T F = [[1+9, 2+12], [2+12, 4+16]], / (1*2*2).
    feats = jnp.array([[[1.0, 2.0], [3.0, 4.0]]])
    np.testing.assert_allclose(np.asarray(losses.gram(feats)), [[2.5, 3.5], [3.5, 5.0]], rtol=1e-6)


def test_gram_accepts_bfloat16_and_returns_float32():
    feats = np.random.default_rng(1).normal(size=(4, 4, 3)).astype(np.float32)
    rounded = np.asarray(jnp.asarray(feats, jnp.bfloat16).astype(jnp.float32))
    got = losses.gram(jnp.asarray(feats, jnp.bfloat16))
    assert got.dtype == jnp.float32
    assert_close(got, np_gram(rounded))


def test_guided_gram_matches_numpy():
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(6, 5, 4)).astype(np.float32)
    mask = rng.uniform(0.0, 1.0, size=(6, 5)).astype(np.float32)
    assert np.sum(mask**2) > 1.0
    assert_close(losses.gram(jnp.asarray(feats), jnp.asarray(mask)), np_gram(feats, mask))


def test_guided_gram_hand_value():
    # Only the second position is in the region: (mF)^T(mF) = [[9, 12], [12, 16]], mass 1, C 2.
    feats = jnp.array([[[1.0, 2.0], [3.0, 4.0]]])
    mask = jnp.array([[0.0, 1.0]])
    np.testing.assert_allclose(
        np.asarray(losses.gram(feats, mask)), [[4.5, 6.0], [6.0, 8.0]], rtol=1e-6
    )


def test_guided_gram_of_an_empty_region_is_zero_not_nan():
    feats = jnp.ones((3, 3, 2))
    got = np.asarray(losses.gram(feats, jnp.zeros((3, 3))))
    np.testing.assert_array_equal(got, np.zeros((2, 2)))


def test_guided_gram_of_a_region_smaller_than_one_position():
    """Deep layers see regions of less than one position (masks downsampled 16x at conv5_x)."""
    rng = np.random.default_rng(14)
    feats = rng.normal(size=(2, 2, 3)).astype(np.float32)
    mask = np.array([[0.5, 0.0], [0.3, 0.0]], np.float32)  # mass 0.34
    got = losses.gram(jnp.asarray(feats), jnp.asarray(mask))
    assert_close(got, np_gram(feats, mask))
    # Equivalently, tiling the map 3x3 (mass 3.06) must not change the guided Gram.
    tiled = losses.gram(jnp.asarray(np.tile(feats, (3, 3, 1))), jnp.asarray(np.tile(mask, (3, 3))))
    assert_close(tiled, got)


def test_gram_is_invariant_to_image_size_for_a_tiled_feature_map():
    """The documented reason for dividing by h w: a texture's Gram does not depend on its extent."""
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(2, 2, 5)).astype(np.float32)
    tiled = np.tile(feats, (3, 3, 1))
    assert tiled.shape == (6, 6, 5)
    small = np.asarray(losses.gram(jnp.asarray(feats)))
    large = np.asarray(losses.gram(jnp.asarray(tiled)))
    assert_close(large, small)
    assert_close(small, np_gram(feats))
    # The same for a guided Gram with the mask tiled along.
    mask = rng.uniform(0.5, 1.0, size=(2, 2)).astype(np.float32)
    small_m = losses.gram(jnp.asarray(feats), jnp.asarray(mask))
    large_m = losses.gram(jnp.asarray(tiled), jnp.asarray(np.tile(mask, (3, 3))))
    assert_close(large_m, small_m)


# --------------------------------------------------------------------------------------------
# content, style-layer and TV losses


def test_content_loss_matches_numpy_and_hand_value():
    rng = np.random.default_rng(4)
    f, p = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    assert_close(losses.content_loss(jnp.asarray(f), jnp.asarray(p)), np_mse(f, p))
    # Differences 1, -1, 2, 0: mean of squares 6 / 4.
    got = losses.content_loss(
        jnp.array([[[2.0, 0.0]], [[5.0, 1.0]]]), jnp.array([[[1.0, 1.0]], [[3.0, 1.0]]])
    )
    np.testing.assert_allclose(float(got), 1.5, rtol=1e-7)


def test_style_layer_loss_matches_numpy_and_hand_value():
    rng = np.random.default_rng(5)
    g, a = rng.normal(size=(2, 6, 6)).astype(np.float32)
    assert_close(losses.style_layer_loss(jnp.asarray(g), jnp.asarray(a)), np_mse(g, a))
    # G - A = [[1, 0], [0, -3]]: (1 + 9) / 4.
    got = losses.style_layer_loss(
        jnp.array([[2.0, 1.0], [1.0, 0.0]]), jnp.array([[1.0, 1.0], [1.0, 3.0]])
    )
    np.testing.assert_allclose(float(got), 2.5, rtol=1e-7)


def test_tv_loss_matches_numpy():
    pixels = np.random.default_rng(6).uniform(0, 255, size=(7, 9, 3)).astype(np.float32)
    assert_close(losses.tv_loss(jnp.asarray(pixels)), np_tv(pixels))


def test_tv_loss_hand_value_on_a_2x2_image():
    # Channel 0 [[0, 1], [2, 4]]: vertical (2-0)^2 + (4-1)^2 = 13, horizontal (1-0)^2 + (4-2)^2 = 5.
    # Channel 1 constant: 0. Channel 2 [[0, 0], [0, 3]]: vertical 9, horizontal 9.
    # (13 + 5 + 9 + 9) / (2 * 2) = 9.
    pixels = np.zeros((2, 2, 3), np.float32)
    pixels[..., 0] = [[0, 1], [2, 4]]
    pixels[..., 1] = 7.0
    pixels[..., 2] = [[0, 0], [0, 3]]
    np.testing.assert_allclose(float(losses.tv_loss(jnp.asarray(pixels))), 9.0, rtol=1e-7)
    # A constant image has no variation.
    assert float(losses.tv_loss(jnp.full((4, 4, 3), 100.0))) == 0.0


# --------------------------------------------------------------------------------------------
# Per-layer weighted sums


SHAPES = {"conv1_1": (8, 8, 3), "conv2_1": (4, 4, 5), "conv4_2": (4, 2, 6)}


def _random_features(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.uniform(0, 2, size=s).astype(np.float32) for n, s in SHAPES.items()}


def _jnp(tree):
    return jax.tree.map(jnp.asarray, tree)


def test_weighted_content_loss_matches_numpy_and_zero_weight_switches_a_layer_off():
    feats, targets = _random_features(7), _random_features(8)
    weights = layer_vector({"conv1_1": 0.5, "conv2_1": 2.0, "conv4_2": 3.0})
    got = losses.weighted_content_loss(_jnp(feats), _jnp(targets), jnp.asarray(weights))
    assert_close(got, np_content(feats, targets, weights))

    off = layer_vector({"conv1_1": 0.5, "conv2_1": 0.0, "conv4_2": 3.0})
    perturbed = dict(feats, conv2_1=feats["conv2_1"] * 100.0)
    got_off = losses.weighted_content_loss(_jnp(perturbed), _jnp(targets), jnp.asarray(off))
    want_off = 0.5 * np_mse(feats["conv1_1"], targets["conv1_1"]) + 3.0 * np_mse(
        feats["conv4_2"], targets["conv4_2"]
    )
    assert_close(got_off, want_off)
    # Weights of layers without a target are ignored.
    ignored = off + layer_vector({"conv5_4": 1e6, "conv3_1": 1e6})
    got_ignored = losses.weighted_content_loss(_jnp(perturbed), _jnp(targets), jnp.asarray(ignored))
    assert_close(got_ignored, want_off)


def _gram_loss(feats, target_grams, weights, masks=None):
    """The Gram loss alone through :func:`nstjax.style_mix.style_loss` (the engine's path)."""
    program = style_mix.StyleProgram(("gram",), (tuple(target_grams),))
    weights = style_mix.StyleWeights(jnp.float32(1.0), weights)
    return style_mix.style_loss(program, feats, {"gram": target_grams}, weights, masks)


def test_gram_style_loss_matches_numpy_and_zero_weight_switches_a_layer_off():
    feats = _random_features(9)
    target_grams = {n: np_gram(f).astype(np.float32) for n, f in _random_features(10).items()}
    weights = layer_vector({"conv1_1": 1.0, "conv2_1": 0.25, "conv4_2": 4.0})
    got = _gram_loss(_jnp(feats), _jnp(target_grams), jnp.asarray(weights))
    assert_close(got, np_style(feats, target_grams, weights))

    off = layer_vector({"conv1_1": 0.0, "conv2_1": 0.25, "conv4_2": 4.0})
    perturbed = dict(feats, conv1_1=feats["conv1_1"] * 50.0)
    got_off = _gram_loss(_jnp(perturbed), _jnp(target_grams), jnp.asarray(off))
    want_off = 0.25 * np_mse(np_gram(feats["conv2_1"]), target_grams["conv2_1"]) + 4.0 * np_mse(
        np_gram(feats["conv4_2"]), target_grams["conv4_2"]
    )
    assert_close(got_off, want_off)


def test_guided_gram_style_loss_with_two_regions_matches_numpy():
    rng = np.random.default_rng(11)
    feats = _random_features(12)
    masks, target_grams = {}, {}
    for name, (h, w, c) in SHAPES.items():
        left = np.zeros((h, w), np.float32)
        left[:, : w // 2] = 1.0
        soft = rng.uniform(0.5, 1.0, size=(h, w)).astype(np.float32)
        masks[name] = np.stack([left * soft, (1.0 - left) * soft])  # [K=2, h, w]
        assert np.all(np.sum(masks[name] ** 2, axis=(1, 2)) > 1.0)  # see the test below
        target_grams[name] = np.stack(
            [np_gram(rng.uniform(0, 2, size=(h, w, c))) for _ in range(2)]
        ).astype(np.float32)
    weights = layer_vector({"conv1_1": 1.0, "conv2_1": 0.5, "conv4_2": 2.0})
    got = _gram_loss(_jnp(feats), _jnp(target_grams), jnp.asarray(weights), _jnp(masks))
    assert_close(got, np_style(feats, target_grams, weights, masks))
    # The guided loss is not the unguided one (the masks matter).
    unguided = sum(
        float(weights[VGG19_LAYERS.index(n)])
        * sum(np_mse(np_gram(feats[n]), t) for t in target_grams[n])
        for n in SHAPES
    )
    assert abs(float(got) - unguided) > 1e-3 * abs(unguided)


# --------------------------------------------------------------------------------------------
# engine.run_loss: a float64 numpy VGG and the tiny network
#
# The tiny network's parameters are drawn here with numpy (He-normal kernels, small random
# biases) and put in the pytree layout documented in nstjax/vgg.py, so the numpy VGG and the
# package see the same network. (vgg.init_params would do as well, but its first call spends
# ~10 s of CPU compiling the random draws, more than this whole file's budget.)

CAFFE_MEAN_RGB = np.array([123.68, 116.779, 103.939])
CONVS_PER_BLOCK = (2, 2, 4, 4, 4)
TINY_CHANNELS = (4, 8, 8, 16, 16)
CONTENT_LAYERS = ("conv2_2", "conv3_1")
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1")  # conv3_1 in both: two pools deep
SIZE = 16


def np_random_layers(seed: int, channels) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"conv1_1": (HWIO kernel, bias), ...}`` in float64."""
    rng = np.random.default_rng(seed)
    layers, cin = {}, 3
    for block, (count, cout) in enumerate(zip(CONVS_PER_BLOCK, channels), start=1):
        for i in range(1, count + 1):
            kernel = rng.normal(size=(3, 3, cin, cout)) * np.sqrt(2.0 / (9 * cin))
            layers[f"conv{block}_{i}"] = (kernel, 0.1 * rng.normal(size=cout))
            cin = cout
    return layers


def to_params(layers) -> dict:
    """The package's parameter pytree (Caffe input convention) for the given layers."""
    return {
        "params": {
            name: {"kernel": jnp.asarray(k, jnp.float32), "bias": jnp.asarray(b, jnp.float32)}
            for name, (k, b) in layers.items()
        },
        "preprocess": {
            "scale": jnp.float32(255.0),
            "mean": jnp.asarray(CAFFE_MEAN_RGB, jnp.float32),
            "std": jnp.ones(3, jnp.float32),
            "channel_order": jnp.asarray([2, 1, 0], jnp.int32),
        },
    }


def np_conv3x3(x, kernel, bias):
    h, w, _ = x.shape
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, kernel.shape[-1]))
    for dy in range(3):
        for dx in range(3):
            out += padded[dy : dy + h, dx : dx + w] @ kernel[dy, dx]
    return out + bias


def np_vgg(layers, rgb, pooling: str) -> dict[str, np.ndarray]:
    """Rectified activations of an ``[H, W, 3]`` RGB image in [0, 1] (Caffe: BGR, x255, - mean)."""
    x = np.asarray(rgb, np.float64)[..., ::-1] * 255.0 - CAFFE_MEAN_RGB[::-1]
    out = {}
    for block, count in enumerate(CONVS_PER_BLOCK, start=1):
        if block > 1:
            h, w, c = x.shape
            x = x.reshape(h // 2, 2, w // 2, 2, c)
            x = x.max(axis=(1, 3)) if pooling == "max" else x.mean(axis=(1, 3))
        for i in range(1, count + 1):
            name = f"conv{block}_{i}"
            x = out[name] = np.maximum(np_conv3x3(x, *layers[name]), 0.0)
    return out


def np_terms(layers, pooling, pixels, hyper, targets) -> np.ndarray:
    """(total, content, style, tv) of ``pixels`` (0-255 units), float64 throughout."""
    feats = np_vgg(layers, np.asarray(pixels, np.float64) / 255.0, pooling)
    content = np_content(feats, targets.content, np.asarray(hyper.content_layer_weights))
    style = np_style(feats, targets.style["gram"], np.asarray(hyper.style_layer_weights))
    tv = np_tv(pixels)
    total = (
        float(hyper.content_weight) * content
        + float(hyper.style_weight) * style
        + float(hyper.tv_weight) * tv
    )
    return np.array([total, content, style, tv])


@pytest.fixture(scope="module")
def net_layers():
    return np_random_layers(0, TINY_CHANNELS)


@pytest.fixture(scope="module")
def net_params(net_layers):
    return to_params(net_layers)


def make_problem(layers, pooling: str, seed: int = 1, size: int = SIZE):
    """Targets from two other random images, per-layer weights, and random initial pixels."""
    rng = np.random.default_rng(seed)
    content_img, style_img = rng.uniform(0, 1, size=(2, size, size, 3))
    cf = np_vgg(layers, content_img, pooling)
    sf = np_vgg(layers, style_img, pooling)
    targets = engine.Targets(
        content={n: jnp.asarray(cf[n], jnp.float32) for n in CONTENT_LAYERS},
        style={"gram": {n: jnp.asarray(np_gram(sf[n]), jnp.float32) for n in STYLE_LAYERS}},
    )
    hyper = engine.Hyper(
        content_weight=jnp.float32(100.0),
        style_weight=jnp.float32(10.0),
        tv_weight=jnp.float32(0.5),
        content_layer_weights=jnp.asarray(layer_vector({"conv2_2": 1.0, "conv3_1": 0.5})),
        style_layer_weights=jnp.asarray(
            layer_vector({"conv1_1": 1.0, "conv2_1": 2.0, "conv3_1": 0.5})
        ),
        learning_rate=jnp.float32(1.0),
    )
    pixels = rng.uniform(0, 255, size=(size, size, 3)).astype(np.float32)
    return targets, hyper, pixels


def make_program(pooling: str, dtype: str = "float32") -> engine.Program:
    return engine.Program(
        content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS, pooling=pooling, dtype=dtype
    )


@functools.cache
def loss_and_grad(pooling: str, dtype: str):
    """Compiled ``((total, terms), d total / d pixels)`` of run_loss, one per configuration."""
    program = make_program(pooling, dtype)

    def loss(params, pixels, hyper, targets):
        return engine.run_loss(params, program, pixels, hyper, targets)

    return jax.jit(jax.value_and_grad(loss, argnums=1, has_aux=True))


def cast_floats(tree, dtype):
    return jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
    )


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_run_loss_total_matches_numpy(net_layers, net_params, pooling):
    targets, hyper, pixels = make_problem(net_layers, pooling)
    (total, terms), _ = loss_and_grad(pooling, "float32")(
        net_params, jnp.asarray(pixels), hyper, targets
    )
    want = np_terms(net_layers, pooling, pixels, hyper, targets)
    assert np.all(want[1:] > 0), "every term must contribute for the check to mean anything"
    np.testing.assert_allclose(np.asarray(terms), want, rtol=1e-4)
    np.testing.assert_allclose(float(total), want[0], rtol=1e-4)
    # Each weighted term is a sizeable part of the total here (so the gradient test sees each).
    weighted = want[1:] * [100.0, 10.0, 0.5]
    assert weighted.min() > 1e-2 * weighted.sum()


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_run_loss_gradient_matches_finite_differences_in_float64(net_layers, net_params, pooling):
    """jax.grad of run_loss (float64 network) against central differences of the numpy loss."""
    targets, hyper, pixels = make_problem(net_layers, pooling)
    pixels = pixels.astype(np.float64)
    with jax.enable_x64(True):
        _, grad = loss_and_grad(pooling, "float64")(
            cast_floats(net_params, jnp.float64),
            jnp.asarray(pixels),
            cast_floats(hyper, jnp.float64),
            cast_floats(targets, jnp.float64),
        )
        grad = np.asarray(grad)
    assert grad.dtype == np.float64

    step = 1e-3  # 0-255 units
    rng = np.random.default_rng(13)
    coords = [tuple(int(rng.integers(0, s)) for s in pixels.shape) for _ in range(10)]
    fd = []
    for c in coords:
        plus, minus = pixels.copy(), pixels.copy()
        plus[c] += step
        minus[c] -= step
        f_plus = np_terms(net_layers, pooling, plus, hyper, targets)[0]
        f_minus = np_terms(net_layers, pooling, minus, hyper, targets)[0]
        fd.append((f_plus - f_minus) / (2 * step))
    fd = np.array(fd)
    got = np.array([grad[c] for c in coords])
    assert np.all(np.abs(fd) > 1e-3 * np.abs(fd).max())
    rel = np.abs(got - fd) / np.abs(fd)
    assert rel.max() < 1e-4, f"relative errors {rel}"


# --------------------------------------------------------------------------------------------
# bfloat16 activations
#
# The performance guide's accuracy guard asks for bf16 gradients within 1e-2 (relative L2) of the
# float32 ones. Measured (relative L2 error of the bf16 gradient of run_loss vs float32):
#
# - the tiny random network here, 16 px, the problem of make_problem with seeds 1-4: max pooling
#   0.008-0.28, avg pooling 0.009-0.013 (channels (8, 16, 16, 32, 32): max 0.04-0.18, avg
#   0.011-0.05);
# - the real VGG-19 at 32 px (conv4_2 / conv1_1..conv5_1, style weight 1e3-1e5): 0.036-0.086,
#   from noise or from the content image, max or avg pooling; 0.034-0.053 at 64 px.
#
# The error is not a defect of the bf16 path: with float32 arithmetic throughout, rounding only
# the weights to bf16 moves the real network's gradient by 0.015-0.042, rounding only the
# activations (forward) by 0.022-0.056, rounding only the backward cotangents by 0.0024. The
# loss's gradient is that sensitive to bf16-sized changes of the forward pass, so the 1e-2
# requirement is not met by bf16 activations as specified: the real-weights check below encodes
# the requirement and is marked xfail (strict, so that it reports when it starts to pass); the
# tiny-network check guards what does hold: same direction, loss value within a few per cent.


@pytest.mark.parametrize(
    ("pooling", "max_rel"),
    # Measured on this problem (seed 1): max 0.058, avg 0.013.
    [("max", 0.15), ("avg", 0.03)],
)
def test_bfloat16_gradient_points_the_same_way_as_float32(net_layers, net_params, pooling, max_rel):
    targets, hyper, pixels = make_problem(net_layers, pooling)
    (loss32, _), grad32 = loss_and_grad(pooling, "float32")(
        net_params, jnp.asarray(pixels), hyper, targets
    )
    (loss16, _), grad16 = loss_and_grad(pooling, "bfloat16")(
        net_params, jnp.asarray(pixels), hyper, targets
    )
    assert grad16.dtype == jnp.float32  # the pixels stay float32
    a, b = np.asarray(grad32, np.float64).ravel(), np.asarray(grad16, np.float64).ravel()
    rel = np.linalg.norm(b - a) / np.linalg.norm(a)
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert rel > 1e-4, "the bfloat16 program gave the float32 gradient: was bf16 used at all?"
    assert rel < max_rel, f"relative error {rel:.4f}"
    assert cosine > 0.99, f"cosine {cosine:.5f}"
    assert abs(float(loss16) / float(loss32) - 1.0) < 0.02


def _crop(path: Path, size: int) -> np.ndarray:
    from nstjax import image

    img = image.load_image(path, size=3 * size)
    h, w, _ = img.shape
    y, x = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[y : y + size, x : x + size])


@pytest.fixture(scope="module")
def real_bf16_gradients(real_params, images_dir):
    """float32 and bfloat16 gradients of the default loss with the real VGG-19 at 32 px."""
    params = real_params
    content = _crop(images_dir / "skimage_chelsea.png", 32)
    style = _crop(images_dir / "great_wave.jpg", 32)
    content_layers = ("conv4_2",)
    style_layers = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    cf = vgg.features(params, jnp.asarray(content), content_layers)
    sf = vgg.features(params, jnp.asarray(style), style_layers)
    targets = engine.Targets(
        content=dict(cf), style={"gram": {n: jnp.asarray(np_gram(sf[n]), jnp.float32) for n in sf}}
    )
    hyper = engine.Hyper(  # nstjax's defaults (api.Run)
        content_weight=jnp.float32(1.0),
        style_weight=jnp.float32(1e5),
        tv_weight=jnp.float32(1e-4),
        content_layer_weights=jnp.asarray(layer_vector({"conv4_2": 1.0})),
        style_layer_weights=jnp.asarray(layer_vector({n: 0.2 for n in style_layers})),
        learning_rate=jnp.float32(1.0),
    )
    pixels = jnp.asarray(content * 255.0)

    def gradient(dtype):
        program = engine.Program(dtype=dtype)  # default layers, max pooling
        grad = jax.jit(jax.grad(lambda p: engine.run_loss(params, program, p, hyper, targets)[0]))
        return np.asarray(grad(pixels), np.float64).ravel()

    return gradient("float32"), gradient("bfloat16")


@pytest.mark.weights
@pytest.mark.slow
def test_bfloat16_gradient_real_weights_points_the_same_way(real_bf16_gradients):
    a, b = real_bf16_gradients
    rel = np.linalg.norm(b - a) / np.linalg.norm(a)
    cosine = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    assert 1e-4 < rel < 0.15, f"relative error {rel:.4f}"  # measured 0.054
    assert cosine > 0.99, f"cosine {cosine:.5f}"


@pytest.mark.weights
@pytest.mark.xfail(
    strict=True,
    reason="bf16 activations give gradients 4-9% off float32 on the real VGG-19 at 32 px "
    "(rounding the weights alone to bf16 already moves them 1.5-4%); see the comment above",
)
@pytest.mark.slow
def test_bfloat16_gradient_real_weights_within_1e_2(real_bf16_gradients):
    a, b = real_bf16_gradients
    rel = np.linalg.norm(b - a) / np.linalg.norm(a)
    assert rel < 1e-2, f"relative error {rel:.4f}"
