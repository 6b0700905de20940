"""oneDNN's sgemm (nstjax.kernels.onednn.matmul) and the Gram product on it (nstjax.kernels.gram)
against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax import engine, style_mix, vgg
from nstjax.bench.problem import make_problem
from nstjax.kernels import gram, onednn


@pytest.fixture(autouse=True)
def _needs_onednn():
    if not onednn.available():
        pytest.skip(f"oneDNN unavailable: {onednn.unavailable_reason()}")


def _rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return np.abs(got - want).max() / np.abs(want).max()


@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_matmul_matches_numpy(transpose_a, transpose_b):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 5) if transpose_a else (5, 7))
    b = rng.standard_normal((3, 7) if transpose_b else (7, 3))
    got = onednn.matmul(
        jnp.asarray(a, jnp.float32),
        jnp.asarray(b, jnp.float32),
        transpose_a=transpose_a,
        transpose_b=transpose_b,
    )
    want = (a.T if transpose_a else a) @ (b.T if transpose_b else b)
    assert _rel(got, want) < 1e-6


def test_matmul_under_vmap_batches_and_broadcasts():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 6, 5))
    b = rng.standard_normal((5, 2))
    fa, fb = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    got = jax.jit(jax.vmap(lambda x: onednn.matmul(x, fb)))(fa)  # b unbatched: broadcast
    assert _rel(got, a @ b) < 1e-6
    got2 = jax.vmap(lambda x, y: onednn.matmul(x, y, transpose_a=True))(fa, fa)
    assert _rel(got2, np.einsum("rpc,rpd->rcd", a, a)) < 1e-6


def test_matmul_shape_errors():
    with pytest.raises(ValueError, match="inner dimensions"):
        onednn.matmul(jnp.zeros((2, 3)), jnp.zeros((4, 2)))


def test_gram_product_and_its_gradient():
    """d/dF sum(U * F^T F) = F (U + U^T), derived by hand."""
    rng = np.random.default_rng(2)
    f = rng.standard_normal((50, 6))
    u = rng.standard_normal((6, 6))
    ff, uu = jnp.asarray(f, jnp.float32), jnp.asarray(u, jnp.float32)
    assert _rel(gram.gram_product(ff, True), f.T @ f) < 1e-6
    grad = jax.grad(lambda x: jnp.sum(uu * gram.gram_product(x, True)))(ff)
    assert _rel(grad, f @ (u + u.T)) < 1e-6


@pytest.mark.parametrize("masked", [False, True])
def test_style_loss_gradient_with_onednn_grams_matches_einsum(masked):
    """The style loss (plain and guided) through oneDNN Grams, value and gradient, equals the
    same loss through XLA's einsum, an independent path."""
    rng = np.random.default_rng(3)
    feats = {"conv1_1": jnp.asarray(rng.random((8, 8, 4)), jnp.float32)}
    if masked:
        masks = {"conv1_1": jnp.asarray(rng.random((2, 8, 8)), jnp.float32)}
        targets = {"conv1_1": jnp.asarray(rng.random((2, 4, 4)) * 0.1, jnp.float32)}
    else:
        masks = None
        targets = {"conv1_1": jnp.asarray(rng.random((4, 4)) * 0.1, jnp.float32)}
    weights = jnp.ones(16)

    def loss(f, convolution):
        program = style_mix.StyleProgram(("gram",), (("conv1_1",),), convolution)
        return style_mix.style_loss(
            program, {"conv1_1": f}, {"gram": targets}, style_mix.StyleWeights(1.0, weights), masks
        )

    f = feats["conv1_1"]
    v1, g1 = jax.value_and_grad(loss)(f, "onednn")
    v0, g0 = jax.value_and_grad(loss)(f, "xla")
    assert abs(float(v1) - float(v0)) < 1e-6 * abs(float(v0))
    assert _rel(g1, g0) < 1e-5


def test_engine_step_uses_onednn_grams_with_onednn_params(tiny_params):
    if jax.default_backend() != "cpu":
        pytest.skip("CPU only")
    for convolution, expected in (("onednn", True), ("xla", False)):
        program = engine.Program(convolution=convolution)
        params = vgg.prepare(tiny_params, convolution)
        problem = make_problem(params, program, 1, 32)
        state = engine.init_state(program, problem.pixels)
        text = engine.train_step.lower(
            params, state, problem.hyper, problem.targets, program=program
        ).as_text()
        assert (onednn.MATMUL_TARGET in text) == expected
