"""Tests of the VGG-19 port (nstjax.vgg) against independent computations.

The reference is never the package's own output: the real weights are read here straight from the
Keras ``.h5`` with h5py (not through :mod:`nstjax.weights`), and a float64 numpy VGG-19 (Caffe
preprocessing, 3x3 SAME cross-correlation, ReLU, 2x2 pooling) is built from them.

Tests marked ``weights`` need the real ``.h5`` (``$NSTJAX_WEIGHTS``, or ``nstjax weights fetch``;
they skip without it); the rest use tiny random networks from :func:`vgg.init_params`.
``tiny_params`` and ``images_dir`` (skips when ``shared/images`` is absent) come from conftest.py.
"""

from pathlib import Path

import flax
import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax import image, resample, vgg
from nstjax.architecture import BLOCKS, LAYER_NAMES
from nstjax.errors import NstjaxError
from nstjax.kernels import onednn

VGG19_CONV_PARAMETERS = 20_024_384  # 16 conv layers of Simonyan & Zisserman, 3x3 kernels + biases
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])  # B, G, R
REL_TOL = 1e-4  # max abs error / max abs value, per layer, float32 port vs float64 reference


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def h5_path(real_h5) -> Path:
    """The real ``.h5`` (conftest.py's ``real_h5``: skips, saying why, when it is not found)."""
    return real_h5


@pytest.fixture(scope="module")
def params(real_params):
    """The real parameters, loaded once through the package's own loader (conftest.py)."""
    return real_params


@pytest.fixture(scope="module")
def h5_layers(h5_path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"conv1_1": (kernel HWIO, bias), ...}`` in float64, read with h5py from the Keras layout."""
    layers = {}
    with h5py.File(h5_path, "r") as f:
        for block, (count, _) in enumerate(BLOCKS, start=1):
            for i in range(1, count + 1):
                group = f[f"block{block}_conv{i}"]
                kernel = np.asarray(group[f"block{block}_conv{i}_W_1:0"], dtype=np.float64)
                bias = np.asarray(group[f"block{block}_conv{i}_b_1:0"], dtype=np.float64)
                layers[f"conv{block}_{i}"] = (kernel, bias)
    return layers


def _crop32(images_dir: Path, name: str) -> np.ndarray:
    """A 32x32 centre crop of a photo scaled to 96 px on its long side (float32 RGB in [0, 1])."""
    img = image.load_image(images_dir / name, size=96)
    h, w, _ = img.shape
    y, x = (h - 32) // 2, (w - 32) // 2
    return np.ascontiguousarray(img[y : y + 32, x : x + 32])


@pytest.fixture(scope="module")
def chelsea32(images_dir) -> np.ndarray:
    return _crop32(images_dir, "skimage_chelsea.png")


@pytest.fixture(scope="module")
def coffee32(images_dir) -> np.ndarray:
    return _crop32(images_dir, "skimage_coffee.png")


# --------------------------------------------------------------------------------------------
# The independent float64 numpy VGG-19


def np_preprocess(rgb: np.ndarray) -> np.ndarray:
    """Caffe convention: RGB -> BGR (reverse the channels), x255, minus the BGR mean."""
    return np.asarray(rgb, np.float64)[..., ::-1] * 255.0 - CAFFE_MEAN_BGR


def np_conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """SAME (pad 1) 3x3 cross-correlation of ``[H, W, Cin]`` with an HWIO kernel, as 9 shifts."""
    h, w, _ = x.shape
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, kernel.shape[-1]))
    for dy in range(3):
        for dx in range(3):
            out += np.einsum("hwc,co->hwo", padded[dy : dy + h, dx : dx + w], kernel[dy, dx])
    return out + bias


def np_pool(x: np.ndarray, pooling: str) -> np.ndarray:
    h, w, c = x.shape
    windows = x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c)
    return windows.max(axis=(1, 3)) if pooling == "max" else windows.mean(axis=(1, 3))


def np_vgg19(layers, rgb: np.ndarray, pooling: str = "max") -> dict[str, np.ndarray]:
    """Every rectified activation conv1_1 ... conv5_4 of one ``[H, W, 3]`` RGB image in [0, 1]."""
    x = np_preprocess(rgb)
    out = {}
    for block, (count, _) in enumerate(BLOCKS, start=1):
        if block > 1:
            x = np_pool(x, pooling)
        for i in range(1, count + 1):
            name = f"conv{block}_{i}"
            x = out[name] = np.maximum(np_conv3x3(x, *layers[name]), 0.0)
    return out


def rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = np.abs(want).max()
    assert scale > 0, "reference activation is all zero: the comparison would be vacuous"
    return float(np.abs(got - want).max() / scale)


@pytest.fixture(scope="module")
def ref_chelsea(h5_layers, chelsea32):
    return np_vgg19(h5_layers, chelsea32)


@pytest.fixture(scope="module")
def ref_coffee(h5_layers, coffee32):
    return np_vgg19(h5_layers, coffee32)


@pytest.fixture(scope="module")
def port_chelsea(params, chelsea32):
    return jax.device_get(vgg.features(params, jnp.asarray(chelsea32), LAYER_NAMES))


# --------------------------------------------------------------------------------------------
# 1. Parameter count


@pytest.mark.weights
def test_parameter_count(params, h5_path):
    assert vgg.count_params(params) == VGG19_CONV_PARAMETERS
    sizes = []
    with h5py.File(h5_path, "r") as f:
        f.visititems(
            lambda _, obj: sizes.append(obj.size) if isinstance(obj, h5py.Dataset) else None
        )
    assert len(sizes) == 2 * len(LAYER_NAMES)
    assert sum(sizes) == VGG19_CONV_PARAMETERS


# --------------------------------------------------------------------------------------------
# 2. Layer by layer against the numpy reference


@pytest.mark.weights
@pytest.mark.parametrize("layer", LAYER_NAMES)
def test_every_layer_matches_numpy_reference(port_chelsea, ref_chelsea, layer):
    got = port_chelsea[layer]
    want = ref_chelsea[layer]
    assert got.dtype == np.float32
    err = rel_err(got, want)
    assert err < REL_TOL, f"{layer}: relative error {err:.2e} against the float64 reference"


@pytest.mark.weights
@pytest.mark.parametrize("convolution", ["flipped", "onednn"])
def test_prepared_convolutions_match_numpy_reference(params, chelsea32, ref_chelsea, convolution):
    """The kernels rearranged by vgg.prepare (nstjax.kernels) give the same features."""
    if convolution == "onednn" and not onednn.available():
        pytest.skip(f"oneDNN unavailable: {onednn.unavailable_reason()}")
    prepared = vgg.prepare(params, convolution)
    got = vgg.features(prepared, jnp.asarray(chelsea32), LAYER_NAMES, convolution=convolution)
    got = jax.device_get(got)
    for layer in LAYER_NAMES:
        err = rel_err(got[layer], ref_chelsea[layer])
        assert err < REL_TOL, f"{layer} ({convolution}): relative error {err:.2e}"


@pytest.mark.weights
def test_avg_pooling_matches_numpy_reference(params, h5_layers, chelsea32):
    want = np_vgg19(h5_layers, chelsea32, pooling="avg")["conv3_1"]
    got = vgg.features(params, jnp.asarray(chelsea32), ["conv3_1"], pooling="avg")["conv3_1"]
    err = rel_err(got, want)
    assert err < REL_TOL, f"conv3_1 with avg pooling: relative error {err:.2e}"
    # And avg pooling really differs from max pooling at that depth.
    max_pooled = np_vgg19(h5_layers, chelsea32, pooling="max")["conv3_1"]
    assert rel_err(got, max_pooled) > 100 * REL_TOL


# --------------------------------------------------------------------------------------------
# 3. Batched input


@pytest.mark.weights
def test_batch_matches_reference_per_image(
    params, chelsea32, coffee32, ref_chelsea, ref_coffee, port_chelsea
):
    batch = jnp.asarray(np.stack([chelsea32, coffee32]))
    got = jax.device_get(vgg.features(params, batch, LAYER_NAMES))
    for layer in LAYER_NAMES:
        assert got[layer].shape[0] == 2
        for i, ref in enumerate((ref_chelsea, ref_coffee)):
            err = rel_err(got[layer][i], ref[layer])
            assert err < REL_TOL, f"{layer}, image {i} of the batch: relative error {err:.2e}"
        # Element 0 of the batch is the same image as the unbatched call.
        assert rel_err(got[layer][0], port_chelsea[layer]) < 1e-5


# --------------------------------------------------------------------------------------------
# 4. Truncation: only the layers up to the deepest requested one run


def _count_convs(jaxpr) -> int:
    """``conv_general_dilated`` equations in a (closed) jaxpr, recursively through sub-jaxprs."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    count = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            count += 1
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else (value,):
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    count += _count_convs(sub)
    return count


def test_truncated_params_suffice_for_shallow_layers(tiny_params):
    img = jax.random.uniform(jax.random.key(1), (16, 16, 3))
    kept = ("conv1_1", "conv1_2")
    truncated = {
        "params": {k: v for k, v in tiny_params["params"].items() if k in kept},
        "preprocess": tiny_params["preprocess"],
    }
    for layer in kept:
        want = vgg.features(tiny_params, img, [layer])[layer]
        got = vgg.features(truncated, img, [layer])[layer]
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    # Control: Flax does fail when a layer needs a deleted parameter.
    with pytest.raises(flax.errors.ScopeParamNotFoundError):
        vgg.features(truncated, img, ["conv2_1"])


@pytest.mark.parametrize("remat", [False, True])
@pytest.mark.parametrize(
    ("layers", "convs"),
    [
        (["conv1_1"], 1),
        (["conv1_2"], 2),
        (["conv2_1"], 3),
        (["conv4_2"], 10),
        (["conv5_1"], 13),
        (["conv1_1", "conv5_1", "conv3_1"], 13),
        (["conv5_4"], 16),
    ],
)
def test_number_of_convolutions_traced(tiny_params, layers, convs, remat):
    img = jnp.zeros((16, 16, 3), jnp.float32)
    jaxpr = jax.make_jaxpr(lambda p, x: vgg.features(p, x, layers, remat=remat))(tiny_params, img)
    assert _count_convs(jaxpr) == convs


# --------------------------------------------------------------------------------------------
# 5. The real weights mean something


def _square(images_dir: Path, name: str, size: int = 64) -> np.ndarray:
    """The largest centred square of a photo, resized to ``size`` x ``size``."""
    img = image.load_image(images_dir / name)
    h, w, _ = img.shape
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return resample.resize(img[y : y + s, x : x + s], (size, size))


def _cosine(a, b) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _mirror_and_other_cosines(params, images_dir) -> tuple[float, float]:
    """Cosines of spatially averaged conv5_1 features: (photo vs its mirror, photo vs another).

    A left-right mirror moves content to other positions, so raw ``[h, w, C]`` features compare
    different content at each position and mix "same content" with "symmetric layout" (measured
    mirror 0.71 vs other photo 0.36). Averaging over positions removes the layout exactly: what is
    left of a mirror is only the flip's effect on the filter responses, which ImageNet training with
    flip augmentation makes small, while a different photo changes which channels fire. So the
    pooled features test what the weights recognise, not where things are. (Gram matrices are also
    layout free and separate even more, 0.86 vs 0.25; the mean is the simpler, first-order one.)
    """
    cat = _square(images_dir, "skimage_chelsea.png")
    mirror = np.ascontiguousarray(cat[:, ::-1])
    other = _square(images_dir, "skimage_coffee.png")
    batch = jnp.asarray(np.stack([cat, mirror, other]))
    f = np.asarray(vgg.features(params, batch, ["conv5_1"])["conv5_1"], np.float64)
    pooled = f.mean(axis=(1, 2))
    return _cosine(pooled[0], pooled[1]), _cosine(pooled[0], pooled[2])


@pytest.fixture(scope="module")
def real_cosines(params, images_dir) -> tuple[float, float]:
    return _mirror_and_other_cosines(params, images_dir)


@pytest.mark.weights
def test_real_weights_recognise_a_mirrored_photo(real_cosines):
    # Measured: mirror 0.953, other photo 0.538 (gap 0.415).
    mirror, other = real_cosines
    assert mirror > 0.85, real_cosines
    assert other < 0.75, real_cosines
    assert mirror - other > 0.25, real_cosines


@pytest.mark.weights
def test_random_weights_do_not(real_cosines, images_dir):
    # Measured: mirror 0.998, other photo 0.996 (gap 0.002): random ReLU features of any photo
    # point the same way.
    rand = vgg.init_params(jax.random.key(0), channels=(64, 128, 256, 512, 512))
    mirror, other = _mirror_and_other_cosines(rand, images_dir)
    real_gap = real_cosines[0] - real_cosines[1]
    assert abs(mirror - other) < 0.05, (mirror, other)
    assert abs(mirror - other) < 0.1 * real_gap, (mirror, other, real_cosines)


# --------------------------------------------------------------------------------------------
# 6. remat, 7. bfloat16


def test_remat_gives_the_same_gradient(tiny_params):
    img = jax.random.uniform(jax.random.key(2), (16, 16, 3))
    layers = ["conv1_1", "conv2_2", "conv3_4", "conv5_4"]
    pre = tiny_params["preprocess"]

    def grads(remat):
        def loss(convs, x):
            f = vgg.features({"params": convs, "preprocess": pre}, x, layers, remat=remat)
            return sum(jnp.sum(v**2) / v.size for v in f.values())

        return jax.jit(jax.grad(loss, argnums=(0, 1)))(tiny_params["params"], img)

    plain, remat = grads(False), grads(True)
    flat_plain = jax.tree.leaves(plain)
    flat_remat = jax.tree.leaves(remat)
    assert len(flat_plain) == len(flat_remat) == 2 * len(LAYER_NAMES) + 1
    assert jax.tree.structure(plain) == jax.tree.structure(remat)
    for a, b in zip(flat_plain, flat_remat, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert np.abs(a).max() > 0
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6 * np.abs(a).max())


def test_bfloat16_close_to_float32(tiny_params):
    img = jax.random.uniform(jax.random.key(3), (2, 16, 16, 3))
    run = jax.jit(
        lambda p, x, dtype: vgg.features(p, x, LAYER_NAMES, dtype=dtype), static_argnums=2
    )
    f32 = run(tiny_params, img, jnp.float32)
    bf16 = run(tiny_params, img, jnp.bfloat16)
    for layer in LAYER_NAMES:
        assert bf16[layer].dtype == jnp.bfloat16
        err = rel_err(bf16[layer].astype(jnp.float32), f32[layer])
        assert err < 2e-2, f"{layer}: bfloat16 relative error {err:.2e}"


# --------------------------------------------------------------------------------------------
# 8. Errors


def test_unknown_layer_name(tiny_params):
    img = jnp.zeros((16, 16, 3), jnp.float32)
    with pytest.raises(NstjaxError) as info:
        vgg.features(tiny_params, img, ["conv4_2", "conv6_1"])
    message = str(info.value)
    assert "conv6_1" in message
    for name in LAYER_NAMES:
        assert name in message


@pytest.mark.parametrize("pooling", ["min", "average"])
def test_unknown_pooling(tiny_params, pooling):
    img = jnp.zeros((16, 16, 3), jnp.float32)
    with pytest.raises(ValueError, match="pooling"):
        vgg.features(tiny_params, img, ["conv1_1"], pooling=pooling)
