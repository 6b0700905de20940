"""The batched optimiser's mechanics on a tiny random VGG (16x16 images)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_lbfgs_wolfe
from engine_batches import CONTENT_LAYERS, RUNS, STYLE_LAYERS
from engine_batches import batch as _batch
from engine_batches import images as _images

from nstjax import api, engine


@pytest.fixture(scope="module")
def setup(tiny_params):
    program = engine.Program(content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS)
    contents, styles = _images(2, 1), _images(2, 2)
    return tiny_params, program, contents, styles


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs", "lbfgs_wolfe"])
def test_runs_are_independent(setup, optimizer):
    """Changing one run's hyperparameters leaves every other run bit-identical."""
    params, program, contents, styles = setup
    program = engine.Program(
        content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS, optimizer=optimizer
    )
    a = engine.optimize(params, program, _batch(params, RUNS, program, contents, styles), 6)
    changed = [RUNS[0], RUNS[1], dict(RUNS[2], sw=1e4, lr=0.5, cw=3.0)]
    b = engine.optimize(params, program, _batch(params, changed, program, contents, styles), 6)
    np.testing.assert_array_equal(a.pixels[:2], b.pixels[:2])
    np.testing.assert_array_equal(a.history[:, :2], b.history[:, :2])
    assert not np.array_equal(a.pixels[2], b.pixels[2])


def test_batched_equals_one_run_alone(setup):
    """A run in a batch of three gives what it gives alone (same maths, batch of one)."""
    params, program, contents, styles = setup
    batch = engine.optimize(params, program, _batch(params, RUNS, program, contents, styles), 5)
    alone = engine.optimize(
        params, program, _batch(params, RUNS[1:2], program, contents, styles), 5
    )
    np.testing.assert_allclose(batch.pixels[1], alone.pixels[0], rtol=1e-5, atol=1e-3)


def test_first_adam_step_is_sign_of_gradient(setup):
    """Adam's first bias-corrected step is lr * g / (|g| + eps), i.e. lr * sign(g) (hand-derived)."""
    params, program, contents, styles = setup
    pixels, hyper, targets = _batch(params, RUNS, program, contents, styles)
    one = lambda i: jax.tree.map(lambda x: x[i], (pixels, hyper, targets))
    out = engine.optimize(params, program, engine.Problem(pixels, hyper, targets), 1)
    for i in range(len(RUNS)):
        p, h, t = one(i)
        grad = jax.grad(lambda x, h=h, t=t: engine.run_loss(params, program, x, h, t)[0])(p)
        expected = np.asarray(p) - float(h.learning_rate) * np.sign(np.asarray(grad))
        big = np.abs(np.asarray(grad)) > 1e-3  # where eps is negligible
        np.testing.assert_allclose(out.pixels[i][big], expected[big], rtol=0, atol=1e-3)


def test_history_records_loss_before_each_step(setup):
    params, program, contents, styles = setup
    pixels, hyper, targets = _batch(params, RUNS, program, contents, styles)
    out = engine.optimize(params, program, engine.Problem(pixels, hyper, targets), 4)
    assert out.history.shape == (4, len(RUNS), len(engine.METRICS))
    start = engine.evaluate(params, pixels, hyper, targets, program=program)
    np.testing.assert_allclose(out.history[0], np.asarray(start), rtol=1e-5)
    # the total is the weighted sum of the terms
    w = np.stack([hyper.content_weight, hyper.style_weight, hyper.tv_weight], axis=1)
    np.testing.assert_allclose(out.history[..., 0], (out.history[..., 1:] * w).sum(-1), rtol=1e-5)
    assert np.all(out.final[:, 0] < out.history[0, :, 0])


def test_new_hyperparameter_values_do_not_recompile(setup):
    params, program, contents, styles = setup
    program = engine.Program(
        content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS, pooling="avg"
    )
    engine.optimize(params, program, _batch(params, RUNS, program, contents, styles), 2)
    step_cache = engine.train_step._cache_size()
    other = [dict(r, sw=r.get("sw", 10.0) * 7, lr=0.3, cw=2.0, tv=0.5) for r in RUNS]
    engine.optimize(params, program, _batch(params, other, program, contents, styles), 3)
    assert engine.train_step._cache_size() == step_cache


def test_scan_loop_matches_python_loop(setup):
    params, program, contents, styles = setup
    args = _batch(params, RUNS, program, contents, styles)
    python = engine.optimize(params, program, args, 7, loop="python")
    scan = engine.optimize(params, program, args, 7, loop="scan", chunk=3)
    np.testing.assert_allclose(scan.pixels, python.pixels, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(scan.history, python.history, rtol=1e-4)


def test_non_finite_run_stops_alone(setup):
    params, program, contents, styles = setup
    runs = [RUNS[0], dict(RUNS[1], sw=np.inf), RUNS[2]]
    out = engine.optimize(params, program, _batch(params, runs, program, contents, styles), 4)
    assert out.failed_at.tolist() == [-1, 0, -1]
    assert np.all(np.isfinite(out.pixels[1]))  # frozen at its last finite image
    healthy = engine.optimize(params, program, _batch(params, RUNS, program, contents, styles), 4)
    np.testing.assert_array_equal(out.pixels[[0, 2]], healthy.pixels[[0, 2]])


def test_same_seed_same_output(tiny_params):
    contents, styles = _images(1, 3), _images(1, 4)
    run = api.Run(init="noise", seed=7, content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS)
    first = api.stylize_batch(tiny_params, contents, styles, [run], steps=3)[0].image
    again = api.stylize_batch(tiny_params, contents, styles, [run], steps=3)[0].image
    other = api.Run(init="noise", seed=8, content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS)
    different = api.stylize_batch(tiny_params, contents, styles, [other], steps=3)[0].image
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, different)


# --------------------------------------------------------------------------------------------
# non-finite steps (issue 15)


@pytest.mark.parametrize(
    "bad, steps",
    [
        # the step's result is NaN while the loss and gradient before it are finite (measured:
        # step 6; the engine used to accept it and end with an all-NaN image)
        (dict(sw=1e30, lr=4.0, tv=1e-4), 10),
        # the shape of issue 15's CLI example (L-BFGS, lr 4, style weight 1e5, tv 1e-4) on the
        # tiny net: the loss overflows at step 13
        (dict(sw=1e5, lr=4.0, tv=1e-4), 16),
    ],
)
def test_a_non_finite_step_is_rejected(setup, bad, steps):
    params, _, contents, styles = setup
    program = engine.Program(
        content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS, optimizer="lbfgs"
    )
    runs = [RUNS[0], dict(RUNS[1], **bad), RUNS[2]]
    out = engine.optimize(params, program, _batch(params, runs, program, contents, styles), steps)
    k = int(out.failed_at[1])
    assert out.failed_at[0] == out.failed_at[2] == -1 and 0 < k < steps
    assert out.converged_at.tolist() == [-1, -1, -1]
    # It keeps the pixels after its last accepted step (k steps), finite.
    assert np.all(np.isfinite(out.pixels[1]))
    fewer = engine.optimize(params, program, _batch(params, runs, program, contents, styles), k)
    np.testing.assert_array_equal(out.pixels[1], fewer.pixels[1])
    # (Not compared with the run optimised alone: a diverging run's pixels reach 1e8 and a batch
    # of another size rounds differently, which the divergence amplifies.)
    # It stopped: later rows repeat the loss at those pixels, with no evaluation counted.
    np.testing.assert_array_equal(
        out.history[k + 1 :, 1], np.broadcast_to(out.history[k, 1], (steps - k - 1, 4))
    )
    assert out.evaluations[:, 1].tolist() == [1] * (k + 1) + [0] * (steps - k - 1)
    # The other runs are bit-identical to a batch where a sane run takes its place.
    sane = [RUNS[0], RUNS[1], RUNS[2]]
    healthy = engine.optimize(
        params, program, _batch(params, sane, program, contents, styles), steps
    )
    np.testing.assert_array_equal(out.pixels[[0, 2]], healthy.pixels[[0, 2]])
    np.testing.assert_array_equal(out.history[:, [0, 2]], healthy.history[:, [0, 2]])


# --------------------------------------------------------------------------------------------
# L-BFGS with a strong-Wolfe line search


@pytest.mark.parametrize(
    "optimizer, first_step, c2",
    [("lbfgs_wolfe_torch", "torch", 0.9), ("lbfgs_wolfe", "polyak", 0.99)],
)
def test_line_search_in_the_engine_is_torchs_algorithm(setup, optimizer, first_step, c2):
    """The engine's lbfgs_wolfe(_torch) (cached evaluations, counts) against the numpy
    transcription of torch's strong-Wolfe L-BFGS (conftest's np_lbfgs_wolfe, checked against torch in tests/test_linesearch.py; lbfgs_wolfe: with
    its first trial step f / |g|^2 and curvature constant 0.99) on one run of the tiny VGG."""
    params, _, contents, styles = setup
    program = engine.Program(
        content_layers=CONTENT_LAYERS,
        style_layers=STYLE_LAYERS,
        optimizer=optimizer,
        lbfgs_history=3,
    )
    pixels, hyper, targets = _batch(params, RUNS[1:2], program, contents, styles)
    out = engine.optimize(params, program, engine.Problem(pixels, hyper, targets), 5)
    one = jax.tree.map(lambda x: x[0], (hyper, targets))
    grad_fn = jax.jit(jax.value_and_grad(lambda p: engine.run_loss(params, program, p, *one)[0]))

    def obj(x):  # float32 evaluations, float64 line-search arithmetic
        value, grad = grad_fn(jnp.asarray(x.reshape(pixels.shape[1:]), jnp.float32))
        return float(value), np.asarray(grad, np.float64).ravel()

    x0 = np.asarray(pixels[0], np.float64).ravel()
    want, want_evals = np_lbfgs_wolfe(obj, x0, 5, 3, 1.0, first_step, c2)
    assert out.evaluations[:, 0].tolist() == [1 + want_evals[0], *want_evals[1:]]
    np.testing.assert_allclose(out.pixels[0].ravel(), want[-1], rtol=0, atol=0.05)
    assert np.abs(want[-1] - np.asarray(pixels[0]).ravel()).max() > 10  # it did move


def test_line_search_runs_needing_more_evaluations_change_nothing_in_the_others(setup):
    params, _, contents, styles = setup
    program = engine.Program(
        content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS, optimizer="lbfgs_wolfe"
    )
    a = engine.optimize(params, program, _batch(params, RUNS, program, contents, styles), 5)
    changed = [RUNS[0], RUNS[1], dict(RUNS[2], lr=300.0)]  # first trials far too long: zooms
    b = engine.optimize(params, program, _batch(params, changed, program, contents, styles), 5)
    assert b.evaluations[:, 2].sum() > a.evaluations[:, 2].sum()
    np.testing.assert_array_equal(a.pixels[:2], b.pixels[:2])
    np.testing.assert_array_equal(a.history[:, :2], b.history[:, :2])
    np.testing.assert_array_equal(a.evaluations[:, :2], b.evaluations[:, :2])
    assert a.evaluations[0].min() >= 2  # step 0: the starting point, then the search
    assert np.all(a.evaluations >= 1)


# --------------------------------------------------------------------------------------------
# convergence stops


@pytest.mark.parametrize("optimizer", ["lbfgs", "lbfgs_wolfe"])
def test_loss_tolerance_stops_a_run_where_the_relative_change_first_meets_it(setup, optimizer):
    params, _, contents, styles = setup
    program = engine.Program(
        content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS, optimizer=optimizer
    )
    steps = 8
    batch = lambda runs, n: engine.optimize(
        params, program, _batch(params, runs, program, contents, styles, tolerances=True), n
    )
    free = batch(RUNS, steps)
    # By hand: the relative loss changes of the free run, and the first step meeting a tolerance.
    loss = free.history[:, 2, 0].astype(np.float64)
    change = np.abs(np.diff(loss)) / np.abs(loss[:-1])  # change[k - 1] is tested at step k
    tolerance = float(np.sort(change)[len(change) // 2]) * 1.001
    k = 1 + int(np.argmax(change <= tolerance))
    assert 1 <= k < steps - 1
    out = batch([RUNS[0], RUNS[1], dict(RUNS[2], ltol=tolerance)], steps)
    assert out.converged_at.tolist() == [-1, -1, k]
    assert out.failed_at.tolist() == [-1, -1, -1]
    np.testing.assert_array_equal(out.pixels[:2], free.pixels[:2])  # the others: untouched
    np.testing.assert_array_equal(out.history[: k + 1, 2], free.history[: k + 1, 2])
    np.testing.assert_array_equal(
        out.history[k:, 2], np.broadcast_to(out.history[k, 2], (steps - k, 4))
    )
    # Evaluations until it stopped (the line search evaluated the point of step k in step k - 1)
    assert np.all(out.evaluations[:k, 2] > 0) and np.all(out.evaluations[k + 1 :, 2] == 0)
    np.testing.assert_array_equal(out.pixels[2], batch(RUNS, k).pixels[2])  # k steps taken


def test_grad_tolerance_and_the_batch_ends_when_every_run_stopped(setup):
    params, program, contents, styles = setup
    pixels, hyper, targets = _batch(params, RUNS, program, contents, styles)
    one = lambda i: jax.tree.map(lambda x: x[i], (hyper, targets))
    grad_max = [  # by hand: the gradient's max-norm at the starting pixels
        float(
            jnp.max(
                jnp.abs(
                    jax.grad(lambda p, i=i: engine.run_loss(params, program, p, *one(i))[0])(
                        pixels[i]
                    )
                )
            )
        )
        for i in range(len(RUNS))
    ]
    runs = [dict(r, gtol=1.01 * g) for r, g in zip(RUNS, grad_max)]  # all met at step 0
    pixels, hyper, targets = _batch(params, runs, program, contents, styles, tolerances=True)
    out = engine.optimize(params, program, engine.Problem(pixels, hyper, targets), 10, chunk=2)
    assert out.converged_at.tolist() == [0, 0, 0]
    assert out.history.shape[0] == 2  # stopped after the first chunk, not 10 steps
    np.testing.assert_array_equal(out.pixels, np.asarray(pixels))
    # Just below the norm: not met at step 0 (a tolerance of 0 is off).
    runs = [dict(RUNS[0], gtol=0.99 * grad_max[0]), RUNS[1], RUNS[2]]
    out = engine.optimize(params, program, _batch(params, runs, program, contents, styles, True), 2)
    assert out.converged_at[0] != 0 and out.converged_at[1:].tolist() == [-1, -1]
    assert out.history.shape[0] == 2
