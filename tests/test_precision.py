"""bf16 activations against fp32: the accuracy guard of the benchmark issue (real weights, 32 px).

Measured on this CPU (docs/benchmarks.md, "bf16 accuracy"): after 20 Adam steps from noise the
bf16 losses are within about 1% of fp32; from the content image within about 4% (the content
term is then a small difference of large features, which bf16 resolves worst). The image
gradient of a single conv layer is within 0.6% of fp32, but the error grows with depth (about 15%
in norm at conv5_1, direction still within cos 0.99): ReLU masks and pooling choices flip where
bf16 rounds a value across a decision. The issue's 1e-2 bar for gradients is therefore met only
for shallow layers; the xfail below keeps that gap visible.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax import api, engine
from nstjax.bench.problem import make_problem

SIZE = 32
STEPS = 20


def _problem(params, dtype, run, init):
    program = engine.Program(
        dtype=dtype, content_layers=tuple(run.content_layers), style_layers=tuple(run.style_layers)
    )
    problem = make_problem(params, program, 1, SIZE, run=run)
    pixels = problem.pixels
    if init == "noise":
        pixels = jax.random.uniform(jax.random.key(5), pixels.shape) * 255.0
    return program, problem._replace(pixels=pixels)


def _gradient(params, dtype, run, init):
    program, problem = _problem(params, dtype, run, init)
    hyper = jax.tree.map(lambda a: a[0], problem.hyper)
    targets = jax.tree.map(lambda a: a[0], problem.targets)
    loss = lambda p: engine.run_loss(params, program, p, hyper, targets)[0]
    return np.asarray(jax.grad(loss)(problem.pixels[0]), np.float64)


def _final_losses(params, dtype, run, init):
    program, problem = _problem(params, dtype, run, init)
    outcome = engine.optimize(params, program, *problem, STEPS)
    assert np.all(outcome.failed_at == -1)
    return outcome.final[0]


def _relative(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.fixture(scope="module")
def full_gradients(real_params):
    """Image gradients of the default objective from noise, fp32 and bf16."""
    return tuple(_gradient(real_params, d, api.Run(), "noise") for d in ("float32", "bfloat16"))


@pytest.mark.weights
def test_bf16_final_losses_within_3_percent(real_params):
    """20 Adam steps from noise at 32 px: total, content, style and TV within 3% of fp32."""
    fp32 = _final_losses(real_params, "float32", api.Run(), "noise")
    bf16 = _final_losses(real_params, "bfloat16", api.Run(), "noise")
    np.testing.assert_allclose(bf16, fp32, rtol=0.03)


@pytest.mark.weights
def test_bf16_gradient_of_a_shallow_layer_within_1e2(real_params):
    """One conv layer (style at conv1_1): the bf16 image gradient is within 1e-2 of fp32."""
    run = api.Run(
        content_layers=("conv1_1",), style_layers=("conv1_1",), content_weight=0.0, tv_weight=0.0
    )
    fp32 = _gradient(real_params, "float32", run, "content")
    bf16 = _gradient(real_params, "bfloat16", run, "content")
    assert _relative(bf16, fp32) < 1e-2


@pytest.mark.weights
def test_bf16_gradient_points_the_same_way(full_gradients):
    """The full objective: the bf16 gradient's direction agrees with fp32 (cos > 0.99)."""
    fp32, bf16 = full_gradients
    cos = np.vdot(fp32, bf16) / (np.linalg.norm(fp32) * np.linalg.norm(bf16))
    assert cos > 0.99


@pytest.mark.weights
@pytest.mark.xfail(strict=True, reason="bf16 through 13 conv layers: ~6-15% gradient error")
def test_bf16_gradient_of_the_full_objective_within_1e2(full_gradients):
    """The issue's bar for the full objective (not met: see the module docstring)."""
    fp32, bf16 = full_gradients
    assert _relative(bf16, fp32) < 1e-2


def test_bf16_program_computes_in_bf16_and_accumulates_losses_in_fp32(tiny_params):
    """Mechanics on the tiny network: bf16 features, fp32 losses and gradients."""
    run = api.Run(content_layers=("conv3_1",), style_layers=("conv1_1", "conv3_1"))
    program, problem = _problem(tiny_params, "bfloat16", run, "content")
    assert problem.targets.content["conv3_1"].dtype == jnp.bfloat16
    assert problem.targets.style["conv1_1"].dtype == jnp.float32
    hyper = jax.tree.map(lambda a: a[0], problem.hyper)
    targets = jax.tree.map(lambda a: a[0], problem.targets)
    total, terms = engine.run_loss(tiny_params, program, problem.pixels[0], hyper, targets)
    assert total.dtype == terms.dtype == jnp.float32
