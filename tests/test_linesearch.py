"""L-BFGS with a strong-Wolfe line search (nstjax.optim.lbfgs_wolfe, nstjax.linesearch) against
``torch.optim.LBFGS(line_search_fn="strong_wolfe")``.

Two references:

- ``np_lbfgs_wolfe`` (tests/conftest.py, shared with tests/test_engine.py): torch's ``LBFGS.step`` and ``_strong_wolfe`` (torch/optim/lbfgs.py,
  torch 2.14) transcribed into float64 numpy with torch's own Python control flow, one iteration
  per step (``max_iter=1``, ``max_eval=26`` so that the line search has torch's default
  ``max_ls=25``; torch's stopping tests are left out: nstjax runs a fixed number of steps). It
  always runs, and is itself checked against torch where torch is installed.
- torch itself (the optional ``torch`` extra), skipped when it is not installed.

nstjax's default first trial step (``first_step="polyak"``, ``f / |g|^2``) is not torch's: the
transcription takes it as an option (the one line that differs), and it is also checked against
first steps derived by hand.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_lbfgs_wolfe, np_strong_wolfe, optimizer_step

from nstjax import linesearch, optim

# --------------------------------------------------------------------------------------------
# problems and the nstjax side


def rosenbrock(p):
    return sum((1 - p[i]) ** 2 + 100 * (p[i + 1] - p[i] ** 2) ** 2 for i in range(len(p) - 1))


def np_rosenbrock(x):
    g = np.zeros_like(x)
    g[:-1] = -2 * (1 - x[:-1]) - 400 * x[:-1] * (x[1:] - x[:-1] ** 2)
    g[1:] += 200 * (x[1:] - x[:-1] ** 2)
    return float(rosenbrock(x)), g


def quadratic(seed=0, dim=6, condition=30.0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    a = q @ np.diag(np.linspace(1.0, condition, dim)) @ q.T
    a = 0.5 * (a + a.T)
    b = rng.normal(size=dim)
    return a, b, rng.normal(size=dim)


def evaluation_of(loss):
    """``loss`` -> a ``value_fn`` (a point -> its Evaluation)."""

    def value_fn(x):
        value, grad = jax.value_and_grad(loss)(x)
        return linesearch.Evaluation(value, None, grad)

    return value_fn


def jax_lbfgs_wolfe(loss, x0, steps, history, lr, first_step="torch"):
    """Iterates of nstjax's lbfgs_wolfe (float64, one jitted step) and the evaluations of each
    step's line search (the first step's count less its evaluation at ``x0``, as torch's)."""
    opt = optim.lbfgs_wolfe(history, first_step=first_step)
    value_fn = evaluation_of(loss)
    lr = jnp.float64(lr)
    step = jax.jit(lambda st, x, first: optimizer_step(opt, value_fn, st, x, lr, first))
    x = jnp.asarray(x0, jnp.float64)
    state = opt.init(x, value_fn(x))
    iterates, evaluations = [], []
    for k in range(steps):
        x, state, n = step(state, x, k == 0)
        iterates.append(np.asarray(x))
        evaluations.append(int(n) - (k == 0))
    return np.array(iterates), evaluations


ROSENBROCK_CASES = [  # (x0, learning rate): 1 is the usual; 0.01 extrapolates, 1e3 zooms
    (np.array([-1.2, 1.0]), 1.0),
    (np.array([-1.2, 1.0, -0.5, 0.3, 0.8]), 1.0),
    (np.array([-1.2, 1.0, -0.5, 0.3]), 0.01),
    (np.array([-1.2, 1.0, -0.5, 0.3]), 1e3),
]


@pytest.mark.parametrize("x0, learning_rate", ROSENBROCK_CASES)
def test_lbfgs_wolfe_matches_torchs_algorithm_on_rosenbrock(x0, learning_rate):
    want, want_evals = np_lbfgs_wolfe(np_rosenbrock, x0, 30, 5, learning_rate)
    with jax.enable_x64(True):
        got, got_evals = jax_lbfgs_wolfe(rosenbrock, x0, 30, 5, learning_rate)
    assert got_evals == want_evals
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)  # measured <= 5e-10
    if learning_rate == 1e3:
        assert max(want_evals) > 3, "the zoom phase must be exercised"
    if learning_rate == 0.01:
        assert min(want_evals) > 1, "the extrapolation must be exercised"


def test_lbfgs_wolfe_matches_torchs_algorithm_on_a_quadratic_with_a_wrapping_history():
    a, b, x0 = quadratic()
    obj = lambda x: (0.5 * x @ a @ x - b @ x, a @ x - b)
    want, want_evals = np_lbfgs_wolfe(obj, x0, 12, 3, 1.0)
    with jax.enable_x64(True):
        aj, bj = jnp.asarray(a), jnp.asarray(b)
        got, got_evals = jax_lbfgs_wolfe(lambda x: 0.5 * x @ aj @ x - bj @ x, x0, 12, 3, 1.0)
    assert got_evals == want_evals
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    solution = np.linalg.solve(a, b)
    assert np.abs(got[-1] - solution).max() < 1e-3 < np.abs(x0 - solution).max()


@pytest.mark.parametrize("x0, learning_rate", ROSENBROCK_CASES)
def test_polyak_first_step_matches_the_transcription_on_rosenbrock(x0, learning_rate):
    want, want_evals = np_lbfgs_wolfe(np_rosenbrock, x0, 30, 5, learning_rate, "polyak")
    with jax.enable_x64(True):
        got, got_evals = jax_lbfgs_wolfe(rosenbrock, x0, 30, 5, learning_rate, "polyak")
    assert got_evals == want_evals
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)  # measured <= 1.2e-8 (lr 1e3)
    torch_rule = np_lbfgs_wolfe(np_rosenbrock, x0, 30, 5, learning_rate)[0]
    assert np.abs(torch_rule[0] - want[0]).max() > 1e-3  # the rules differ


def test_polyak_first_step_by_hand_on_a_quadratic():
    # f = (x1^2 + 4 x2^2) / 2 from (2, 1): f = 4, g = (2, 4), |g|^2 = 20, so t = 4 / 20 = 0.2 and
    # the trial is (1.6, 0.2): f = 1.36 (sufficient decrease) and g . d = -(1.6 * 2 + 0.8 * 4)
    # = -6.4, |-6.4| <= 0.9 * 20 (curvature): accepted, one evaluation. torch's rule would try
    # t = min(1, 1 / 6) instead.
    loss = lambda x: 0.5 * (x[0] ** 2 + 4 * x[1] ** 2)
    with jax.enable_x64(True):
        got, evals = jax_lbfgs_wolfe(loss, np.array([2.0, 1.0]), 1, 3, 1.0, "polyak")
        np.testing.assert_allclose(got[0], [1.6, 0.2], rtol=0, atol=1e-12)
        assert evals == [1]
        # The learning rate scales it: lr 2.5 tries t = 0.5, the point (1, -1): f = 2.5 < 4 and
        # g . d = (1, -4) . (-2, -4) = 14, |14| <= 18: accepted as well, one evaluation.
        got, evals = jax_lbfgs_wolfe(loss, np.array([2.0, 1.0]), 1, 3, 2.5, "polyak")
        np.testing.assert_allclose(got[0], [1.0, -1.0], rtol=0, atol=1e-12)
        assert evals == [1]


def test_polyak_first_step_falls_back_to_torchs_where_the_loss_is_not_positive():
    # f = |x|^2 / 2 - 100 from (3, -4): f < 0, so torch's t = min(1, 1 / 7); accepted
    # (g . d = -25 * 6 / 7, |.| <= 0.9 * 25), the point is (3, -4) * 6 / 7.
    loss = lambda x: 0.5 * jnp.sum(x**2) - 100.0
    with jax.enable_x64(True):
        got, evals = jax_lbfgs_wolfe(loss, np.array([3.0, -4.0]), 1, 3, 1.0, "polyak")
    np.testing.assert_allclose(got[0], [18 / 7, -24 / 7], rtol=0, atol=1e-12)
    assert evals == [1]


def torch_lbfgs_wolfe(torch, loss, x0, steps, history, lr):
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [x],
        lr=lr,
        max_iter=1,
        max_eval=26,  # line search budget max_eval - 1 = torch's default max_ls of 25
        history_size=history,
        tolerance_grad=0.0,
        line_search_fn="strong_wolfe",
    )
    calls = [0]

    def closure():
        calls[0] += 1
        opt.zero_grad()
        value = loss(x)
        value.backward()
        return value

    iterates, evaluations = [], []
    for _ in range(steps):
        before = calls[0]
        opt.step(closure)
        iterates.append(x.detach().numpy().copy())
        evaluations.append(calls[0] - before - 1)  # step() first re-evaluates the current point
    return np.array(iterates), evaluations


@pytest.mark.parametrize("x0, learning_rate", ROSENBROCK_CASES)
def test_lbfgs_wolfe_matches_torch(x0, learning_rate):
    torch = pytest.importorskip("torch")
    want, want_evals = torch_lbfgs_wolfe(torch, rosenbrock, x0, 30, 5, learning_rate)
    reference, reference_evals = np_lbfgs_wolfe(np_rosenbrock, x0, 30, 5, learning_rate)
    assert reference_evals == want_evals  # the transcription is torch's algorithm
    np.testing.assert_allclose(reference, want, rtol=0, atol=1e-8)  # float64 rounding: 1e-9
    with jax.enable_x64(True):
        got, got_evals = jax_lbfgs_wolfe(rosenbrock, x0, 30, 5, learning_rate)
    assert got_evals == want_evals
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-8)  # measured <= 5e-10


# --------------------------------------------------------------------------------------------
# pieces


def test_cubic_interpolate_finds_the_minimiser_of_a_cubic():
    # f = x^3 - 3x through (0, 0, -3) and (2, 2, 9): the cubic is f, minimised at x = 1.
    got = linesearch.cubic_interpolate(0.0, 0.0, -3.0, 2.0, 2.0, 9.0)
    np.testing.assert_allclose(float(got), 1.0, rtol=1e-6)
    # Order of the points does not matter, and bounds clip.
    np.testing.assert_allclose(
        float(linesearch.cubic_interpolate(2.0, 2.0, 9.0, 0.0, 0.0, -3.0)), 1.0, rtol=1e-6
    )
    clipped = linesearch.cubic_interpolate(0.0, 0.0, -3.0, 2.0, 2.0, 9.0, bounds=(1.5, 3.0))
    assert float(clipped) == 1.5
    # No real minimiser (d1 = 0, g1 g2 = 1 > 0): the midpoint of the bounds.
    assert float(linesearch.cubic_interpolate(0.0, 0.0, 1.0, 1.0, 2.0 / 3.0, 1.0)) == 0.5


def test_cubic_interpolate_is_scale_free_where_squared_slopes_overflow_float32():
    # c * (x^3 - 3x) has the minimiser of x^3 - 3x (x = 1) for any c > 0; at c = 1e20 the
    # slopes are 3e20 and 9e20, whose products overflow float32 (torch's formula gives NaN).
    c = 1e20
    got = linesearch.cubic_interpolate(
        jnp.float32(0.0), jnp.float32(0.0), jnp.float32(-3 * c),
        jnp.float32(2.0), jnp.float32(2 * c), jnp.float32(9 * c),
    )  # fmt: skip
    np.testing.assert_allclose(float(got), 1.0, rtol=1e-5)
    # an infinite value at one end: the midpoint instead of NaN
    bad = linesearch.cubic_interpolate(0.0, 0.0, -3.0, 2.0, jnp.inf, jnp.inf)
    assert float(bad) == 1.0


def test_a_search_on_a_loss_of_1e13_in_float32_is_the_float64_search():
    # f = a x^4 with a = 1e13 from x = 1 along -g (the scale of the paper's sums from noise),
    # trial step 100 f / g^2 (x = -24: far too long). Float64 numpy transcription of torch's
    # search against nstjax's float32 search: the same evaluations and accepted step.
    a = 1e13

    def np_obj(x):
        return float(a * x[0] ** 4), np.array([4 * a * x[0] ** 3])

    def value_and_grad(x):
        return linesearch.Evaluation(a * jnp.sum(x**4), None, 4 * a * x**3)

    x = np.array([1.0])
    f, g = np_obj(x)
    t = 100 * f / (g @ g)
    want_f, _, want_t, want_evals = np_strong_wolfe(np_obj, x, t, -g, f, g, -(g @ g))
    xj = jnp.asarray(x, jnp.float32)
    here = value_and_grad(xj)
    line = linesearch.Line(xj, -here.grad, here, -jnp.sum(here.grad**2))
    found = linesearch.strong_wolfe(value_and_grad, line, jnp.float32(t))
    assert int(found.evaluations) == want_evals > 2  # it had to zoom
    np.testing.assert_allclose(float(found.step), want_t, rtol=1e-4)
    assert np.isfinite(float(found.evaluation.value)) and float(found.evaluation.value) < f


def test_no_search_makes_no_evaluation():
    calls = []

    def value_and_grad(x):
        calls.append(1)
        return linesearch.Evaluation(jnp.sum(x**2), None, 2 * x)

    x = jnp.array([1.0, -2.0])
    here = value_and_grad(x)
    line = linesearch.Line(x, -here.grad, here, -jnp.sum(here.grad**2))
    found = linesearch.strong_wolfe(value_and_grad, line, jnp.float32(1.0), search=False)
    assert int(found.evaluations) == 0 and float(found.step) == 0.0
    assert float(found.evaluation.value) == float(here.value)


def test_a_non_finite_trial_point_shrinks_the_step():
    # f = (x - 1)^2 for x < 1.5, NaN beyond, from x = 0 along d = 2 (slope -4): the first trial
    # (t = 1, x = 2) is NaN, so the bracket is [0, 1]; the cubic through a NaN has no minimiser,
    # so the next trial is the midpoint t = 0.5 (x = 1, the minimum), which is accepted.
    def value_and_grad(x):
        value = jnp.where(x[0] < 1.5, jnp.sum((x - 1) ** 2), jnp.nan)
        return linesearch.Evaluation(value, None, 2 * (x - 1))

    x, d = jnp.array([0.0]), jnp.array([2.0])
    line = linesearch.Line(x, d, value_and_grad(x), jnp.float32(-4.0))
    found = linesearch.strong_wolfe(value_and_grad, line, jnp.float32(1.0))
    assert float(found.step) == 0.5
    assert float(found.evaluation.value) == 0.0
    assert int(found.evaluations) == 2


def test_under_vmap_a_run_needing_more_evaluations_changes_nothing_in_the_others():
    problems = [quadratic(seed, 5, 20.0) for seed in range(3)]
    a = jnp.asarray(np.stack([p[0] for p in problems]), jnp.float32)
    b = jnp.asarray(np.stack([p[1] for p in problems]), jnp.float32)
    x0 = jnp.asarray(np.stack([p[2] for p in problems]), jnp.float32)
    opt = optim.lbfgs_wolfe(history=4)

    def run(x, a, b, lr):
        def value_fn(x):
            return linesearch.Evaluation(0.5 * x @ a @ x - b @ x, None, a @ x - b)

        def body(carry, k):
            x, state = carry
            x, state, n = optimizer_step(opt, value_fn, state, x, lr, k == 0)
            return (x, state), (x, n)

        start = (x, opt.init(x, value_fn(x)))
        return jax.lax.scan(body, start, jnp.arange(8))[1]

    batched = jax.jit(jax.vmap(run))
    x_first, n_first = batched(x0, a, b, jnp.array([1.0, 0.9, 1.0], jnp.float32))
    x_second, n_second = batched(x0, a, b, jnp.array([1.0, 0.9, 300.0], jnp.float32))
    np.testing.assert_array_equal(np.asarray(x_second[:2]), np.asarray(x_first[:2]))
    np.testing.assert_array_equal(np.asarray(n_second[:2]), np.asarray(n_first[:2]))
    assert int(n_second[2].sum()) > int(n_first[2].sum())  # the third run searched longer
    for r, lr in enumerate([1.0, 0.9, 300.0]):  # and each run is the run alone
        alone_x, alone_n = jax.jit(run)(x0[r], a[r], b[r], jnp.float32(lr))
        np.testing.assert_allclose(
            np.asarray(x_second[r]), np.asarray(alone_x), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_array_equal(np.asarray(n_second[r]), np.asarray(alone_n))


def test_make_returns_the_line_search_optimisers_with_their_first_steps():
    x = jnp.array([2.0, 1.0])

    def value_fn(x):
        return linesearch.Evaluation(0.5 * (x[0] ** 2 + 4 * x[1] ** 2), None, x * jnp.array([1, 4]))

    for name in ("lbfgs_wolfe", "lbfgs_wolfe_torch"):
        opt = optim.make(name, lbfgs_history=7)
        assert opt.init(jnp.zeros((2, 3)), value_fn(x)).memory.s.shape == (7, 2, 3)
    # First step from (2, 1) on (x1^2 + 4 x2^2) / 2 (by hand, above): polyak t = 0.2, torch 1/6
    for name, t in (("lbfgs_wolfe", 0.2), ("lbfgs_wolfe_torch", 1 / 6)):
        opt = optim.make(name)
        new, *_ = optimizer_step(opt, value_fn, opt.init(x, value_fn(x)), x, 1.0, True)
        np.testing.assert_allclose(np.asarray(new), [2 - 2 * t, 1 - 4 * t], rtol=1e-6)


def test_lbfgs_wolfe_accepts_a_step_whose_slope_torchs_curvature_constant_rejects():
    """On f = x^2 / 2 from x = 1 along -g a step t leaves the slope ratio g(t).d / g.d = 1 - t.
    At t = 0.05 (ratio 0.95) torch's c2 = 0.9 rejects the step and extrapolates; lbfgs_wolfe's
    c2 = 0.99 accepts it with one evaluation."""
    x = jnp.array([1.0])

    def value_fn(x):
        return linesearch.Evaluation(0.5 * jnp.sum(x**2), None, x)

    # first trial steps at this point: polyak f/|g|^2 = 0.5 and torch min(1, 1/|g|_1) = 1;
    # the first step also evaluates at x
    for name, lr, evaluations in (("lbfgs_wolfe", 0.1, 1 + 1), ("lbfgs_wolfe_torch", 0.05, 1 + 2)):
        opt = optim.make(name)
        *_, n = optimizer_step(opt, value_fn, opt.init(x, value_fn(x)), x, lr, True)
        assert int(n) == evaluations, name


def test_an_unknown_first_step_rule_is_refused():
    with pytest.raises(ValueError, match="first_step"):
        optim.lbfgs_wolfe(first_step="newton")
