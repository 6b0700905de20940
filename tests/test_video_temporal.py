"""The temporal loss: its value and gradient against numpy, as a term of one run of the engine
(added only when a run has temporal targets), traced so a new weight does not recompile."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from nstjax import engine, losses
from nstjax.batch import build
from nstjax.run import Run


def _numpy_loss(x, warped, c):
    """``sum_j (1/D) sum_k c_jk (x_k - w_jk)^2`` in float64, D = 3 H W."""
    x, warped, c = (np.asarray(a, np.float64) for a in (x, warped, c))
    return sum(np.sum(c[j][..., None] * (x - warped[j]) ** 2) for j in range(len(warped))) / x.size


def _numpy_grad(x, warped, c):
    x, warped, c = (np.asarray(a, np.float64) for a in (x, warped, c))
    return sum(2 * c[j][..., None] * (x - warped[j]) for j in range(len(warped))) / x.size


def _problem(seed=0, j=2, shape=(5, 6)):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (*shape, 3)).astype(np.float32)
    warped = rng.uniform(0, 255, (j, *shape, 3)).astype(np.float32)
    c = rng.random((j, *shape)).astype(np.float32)
    return x, warped, c


def test_value_and_gradient_match_numpy():
    x, warped, c = _problem()
    value, grad = jax.value_and_grad(losses.temporal_loss)(*map(jnp.asarray, (x, warped, c)))
    # float32 sums of ~100 terms of size ~255^2: relative error ~1e-6
    np.testing.assert_allclose(float(value), _numpy_loss(x, warped, c), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(grad), _numpy_grad(x, warped, c), rtol=1e-5, atol=1e-6)


def test_gradient_matches_central_differences_in_float64():
    x, warped, c = _problem(seed=1, j=1, shape=(3, 4))
    grad = _numpy_grad(x, warped, c)
    eps = 1e-3
    for index in [(0, 0, 0), (1, 2, 1), (2, 3, 2)]:
        up, down = x.astype(np.float64), x.astype(np.float64)
        up[index] += eps
        down[index] -= eps
        numeric = (_numpy_loss(up, warped, c) - _numpy_loss(down, warped, c)) / (2 * eps)
        np.testing.assert_allclose(grad[index], numeric, rtol=1e-6)
    # the loss accumulates in float32 (as every loss of the engine): a few ulps
    auto = jax.grad(losses.temporal_loss)(*map(jnp.asarray, (x, warped, c)))
    np.testing.assert_allclose(np.asarray(auto), grad, rtol=1e-5, atol=1e-6)


def _built(params, runs, shape=(16, 16)):
    rng = np.random.default_rng(2)
    contents = [rng.random((*shape, 3)).astype(np.float32)]
    styles = [rng.random((*shape, 3)).astype(np.float32)]
    program = engine.Program(content_layers=("conv2_1",), style_layers=("conv1_1", "conv2_1"))
    return program, build.build(params, program, runs, contents, styles)


def test_build_adds_temporal_targets_only_for_runs_that_have_them(tiny_params):
    _, plain = _built(tiny_params, [Run(), Run(seed=1)])
    assert plain.targets.temporal is None and plain.hyper.temporal_weight is None
    rng = np.random.default_rng(3)
    warped = rng.random((2, 16, 16, 3)).astype(np.float32)
    c = rng.random((2, 16, 16)).astype(np.float32)
    runs = [Run(temporal=warped, temporal_reliability=c, temporal_weight=5.0), Run()]
    _, built = _built(tiny_params, runs)
    np.testing.assert_allclose(np.asarray(built.targets.temporal[0]), warped * 255.0, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(built.targets.temporal_mask[0]), c)
    assert not np.any(np.asarray(built.targets.temporal_mask[1]))  # padded: no effect
    np.testing.assert_array_equal(np.asarray(built.hyper.temporal_weight), [5.0, 0.0])


def test_run_loss_adds_the_weighted_term_to_the_total_only(tiny_params):
    rng = np.random.default_rng(4)
    warped = rng.random((1, 16, 16, 3)).astype(np.float32)
    c = rng.random((1, 16, 16)).astype(np.float32)
    run = Run(temporal=warped, temporal_reliability=c, temporal_weight=3.0)
    program, built = _built(tiny_params, [run])
    _, plain = _built(tiny_params, [dataclasses.replace(run, temporal=None)])
    one = lambda tree: jax.tree.map(lambda a: a[0], tree)  # noqa: E731
    x = jnp.asarray(built.pixels[0]) + 7.0
    total, terms = engine.run_loss(tiny_params, program, x, one(built.hyper), one(built.targets))
    base, base_terms = engine.run_loss(
        tiny_params, program, x, one(plain.hyper), one(plain.targets)
    )
    np.testing.assert_allclose(np.asarray(terms[1:]), np.asarray(base_terms[1:]), rtol=1e-6)
    expected = 3.0 * _numpy_loss(np.asarray(x), warped * 255.0, c)
    np.testing.assert_allclose(float(total - base), expected, rtol=1e-4)


def test_a_new_temporal_weight_does_not_recompile(tiny_params):
    rng = np.random.default_rng(5)
    warped = rng.random((1, 16, 16, 3)).astype(np.float32)
    c = np.ones((1, 16, 16), np.float32)
    run = Run(temporal=warped, temporal_reliability=c, temporal_weight=1.0)
    program, built = _built(tiny_params, [run])
    engine.optimize(tiny_params, program, built, 2, loop="python")
    compiled = engine.train_step._cache_size()
    _, other = _built(tiny_params, [dataclasses.replace(run, temporal_weight=50.0)])
    engine.optimize(tiny_params, program, other, 2, loop="python")
    assert engine.train_step._cache_size() == compiled


def test_a_heavy_temporal_weight_pulls_the_image_to_the_warped_frame(tiny_params):
    rng = np.random.default_rng(6)
    warped = rng.random((1, 16, 16, 3)).astype(np.float32)
    c = np.zeros((1, 16, 16), np.float32)
    c[0, :8] = 1.0  # only the top half is reliable
    run = Run(temporal=warped, temporal_reliability=c, temporal_weight=1.0, learning_rate=5.0)
    run = dataclasses.replace(run, content_weight=0.0, style_weight=0.0, tv_weight=0.0)
    program, built = _built(tiny_params, [run])
    out = engine.optimize(tiny_params, program, built, 100, loop="python")
    top = np.abs(out.pixels[0, :8] / 255.0 - warped[0, :8]).mean()
    bottom = np.abs(out.pixels[0, 8:] / 255.0 - warped[0, 8:]).mean()
    assert top < 0.02 and bottom > 0.2  # the bottom keeps its start (the content), ~1/3 away
