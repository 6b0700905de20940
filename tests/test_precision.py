"""bf16 activations against fp32: what bf16 must deliver (real weights, 32 px).

The benchmark issue asked for image gradients within 1e-2 of fp32. That was measured unreachable:
the full objective's gradient is 4-9% off fp32 (relative norm of the difference; 4.9% from noise,
4.2% from the content image at 32 px), because ReLU masks and max-pool choices flip where bf16
rounds a value across them, and the error compounds with depth (0.6% at conv1_1, 17% at conv5_1;
docs/benchmarks.md, "Accuracy of bf16"). What bf16 must deliver instead is the *result*:

- the final loss (and each of its terms) within 3% of fp32 after 20 Adam steps, from the content
  image and from noise (measured 0.3-1.0%);
- the final image within 30 dB PSNR of the fp32 image (measured 39.0 dB from noise, 39.8 dB from
  the content; after 100 steps the two trajectories drift further apart, 29-33 dB);
- the gradient's direction within cos 0.99 of fp32 (measured 0.9988), its norm error below 15%,
  and a shallow layer's gradient within the issue's 1e-2.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax import api, engine, image, init, losses, metrics, vgg
from nstjax.batch.plan import program_for
from nstjax.run import Options, Run, layer_weight_vector

SIZE = 32
STEPS = 20
LOSS_RTOL = 0.03
MIN_PSNR_DB = 30.0
INITS = ("content", "uniform")


def _inputs(images_dir):
    content = image.load_image(images_dir / "skimage_chelsea.png", SIZE)
    style = image.load_image(images_dir / "starry_night.jpg", SIZE)
    return content, style


def _runs(content):
    noise = init.uniform_noise(content.shape[:2], seed=5)  # full-range noise: bf16's worst start
    return [Run(init="content"), Run(init=noise)]


@pytest.fixture(scope="module")
def stylised(real_params, images_dir):
    """The default objective, 20 Adam steps, fp32 and bf16, from the content and from noise."""
    content, style = _inputs(images_dir)
    return {
        dtype: api.stylize_batch(
            real_params, [content], [style], _runs(content), steps=STEPS, dtype=dtype
        )
        for dtype in ("float32", "bfloat16")
    }


def _gradient(params, dtype, run, pixels, content, style):
    """The image gradient of ``run``'s objective at ``pixels`` (0-255), hand-built targets."""
    program = program_for([run], Options(dtype=dtype), "xla")
    dt = jnp.dtype(dtype)
    content_feats = vgg.features(params, jnp.asarray(content), program.content_layers, dtype=dt)
    style_feats = vgg.features(params, jnp.asarray(style), program.style_layers, dtype=dt)
    targets = engine.Targets(
        content=content_feats, style={"gram": {n: losses.gram(f) for n, f in style_feats.items()}}
    )
    hyper = engine.Hyper(
        content_weight=jnp.float32(run.content_weight),
        style_weight=jnp.float32(run.style_weight),
        tv_weight=jnp.float32(run.tv_weight),
        content_layer_weights=jnp.asarray(layer_weight_vector(run.content_layers, "c")),
        style_layer_weights=jnp.asarray(layer_weight_vector(run.style_layers, "s")),
        learning_rate=jnp.float32(run.step_size("adam")),
    )
    loss = lambda p: engine.run_loss(params, program, p, hyper, targets)[0]
    return np.asarray(jax.grad(loss)(jnp.asarray(pixels, jnp.float32)), np.float64)


def _relative(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.fixture(scope="module")
def full_gradients(real_params, images_dir):
    """Image gradients of the default objective at uniform noise, fp32 and bf16."""
    content, style = _inputs(images_dir)
    noise = init.uniform_noise(content.shape[:2], seed=5) * 255.0
    return tuple(
        _gradient(real_params, d, Run(), noise, content, style) for d in ("float32", "bfloat16")
    )


@pytest.mark.slow
@pytest.mark.weights
@pytest.mark.parametrize("start", range(len(INITS)), ids=INITS)
def test_bf16_final_losses_within_3_percent(stylised, start):
    """Total, content, style and TV of the final image within 3% of fp32."""
    fp32, bf16 = stylised["float32"][start], stylised["bfloat16"][start]
    assert fp32.failed_at is None and bf16.failed_at is None
    keys = list(fp32.final)
    np.testing.assert_allclose(
        [bf16.final[k] for k in keys], [fp32.final[k] for k in keys], rtol=LOSS_RTOL
    )


@pytest.mark.slow
@pytest.mark.weights
@pytest.mark.parametrize("start", range(len(INITS)), ids=INITS)
def test_bf16_image_within_30_db_of_fp32(stylised, start):
    fp32, bf16 = stylised["float32"][start], stylised["bfloat16"][start]
    assert metrics.psnr(bf16.image, fp32.image) > MIN_PSNR_DB


@pytest.mark.weights
@pytest.mark.slow
def test_bf16_gradient_of_a_shallow_layer_within_1e2(real_params, images_dir):
    """One conv layer (style at conv1_1): the bf16 image gradient is within 1e-2 of fp32."""
    content, style = _inputs(images_dir)
    run = Run(
        content_layers=("conv1_1",), style_layers=("conv1_1",), content_weight=0.0, tv_weight=0.0
    )
    fp32, bf16 = (
        _gradient(real_params, d, run, content * 255.0, content, style)
        for d in ("float32", "bfloat16")
    )
    assert _relative(bf16, fp32) < 1e-2


@pytest.mark.weights
@pytest.mark.slow
def test_bf16_gradient_of_the_full_objective_points_the_same_way(full_gradients):
    """Through 13 conv layers the norm error is 4-9% (the issue's 1e-2 is out of reach: see the
    module docstring); the direction agrees (cos > 0.99) and the error stays below 15%."""
    fp32, bf16 = full_gradients
    cos = np.vdot(fp32, bf16) / (np.linalg.norm(fp32) * np.linalg.norm(bf16))
    assert cos > 0.99
    assert _relative(bf16, fp32) < 0.15


def test_bf16_program_computes_in_bf16_and_accumulates_losses_in_fp32(tiny_params):
    """Mechanics on the tiny network: bf16 features, fp32 losses."""
    run = Run(content_layers=("conv3_1",), style_layers=("conv1_1", "conv3_1"))
    rng = np.random.default_rng(0)
    content, style = (rng.random((16, 16, 3)).astype(np.float32) for _ in range(2))
    program = program_for([run], Options(dtype="bfloat16"), "xla")
    feats = vgg.features(tiny_params, jnp.asarray(content), ("conv3_1",), dtype=jnp.bfloat16)
    assert feats["conv3_1"].dtype == jnp.bfloat16
    gram = losses.gram(feats["conv3_1"])
    assert gram.dtype == jnp.float32
    hyper = engine.Hyper(
        *(jnp.float32(v) for v in (run.content_weight, run.style_weight, run.tv_weight)),
        content_layer_weights=jnp.asarray(layer_weight_vector(run.content_layers, "c")),
        style_layer_weights=jnp.asarray(layer_weight_vector(run.style_layers, "s")),
        learning_rate=jnp.float32(1.0),
    )
    style_feats = vgg.features(tiny_params, jnp.asarray(style), program.style_layers)
    targets = engine.Targets(
        content=feats, style={"gram": {n: losses.gram(f) for n, f in style_feats.items()}}
    )
    total, terms = engine.run_loss(tiny_params, program, jnp.asarray(content) * 255, hyper, targets)
    assert total.dtype == terms.dtype == jnp.float32
