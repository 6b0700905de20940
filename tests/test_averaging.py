"""Iterate averaging (nstjax.averaging) against a numpy transcription of crowsonkb's EMA."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import optimizer_step

from nstjax import averaging, engine, optim
from nstjax.batch import build
from nstjax.errors import NstjaxError
from nstjax.loop import Hooks
from nstjax.run import Options, Run, validate_options

SIZE = 16


def np_ema(iterates: list[np.ndarray], decay: float) -> np.ndarray:
    """crowsonkb/style-transfer-pytorch's ``EMA`` (style_transfer.py lines 237-253) in float64:
    created with the first iterate, updated with each later one, read bias-corrected."""
    value, accum = np.zeros_like(iterates[0], np.float64), 1.0
    for x in iterates:
        accum *= decay
        value = decay * value + (1 - decay) * np.asarray(x, np.float64)
    return value / (1 - accum)


def _quadratic(target):
    """``x -> |x - target|^2`` with its gradient, as an optimiser's ``value_fn``."""
    return lambda x: optim.Evaluation(jnp.sum((x - target) ** 2), None, 2 * (x - target))


def test_the_average_of_adam_on_a_quadratic_is_the_numpy_ema():
    target = jnp.asarray(np.random.default_rng(0).normal(size=(4, 5, 3)), jnp.float32)
    value_fn = _quadratic(target)
    inner = optim.adam(b1=0.9, b2=0.99)
    opt = averaging.averaged(inner, 0.9)
    pixels = jnp.zeros((4, 5, 3), jnp.float32)
    like = value_fn(pixels)
    state, iterates = opt.init(pixels, like), [np.asarray(pixels)]
    plain_state, plain = inner.init(pixels, like), pixels
    for k in range(25):
        pixels, state, _ = optimizer_step(opt, value_fn, state, pixels, jnp.float32(0.1), k == 0)
        plain, plain_state, _ = optimizer_step(
            inner, value_fn, plain_state, plain, jnp.float32(0.1), k == 0
        )
        iterates.append(np.asarray(pixels))
    np.testing.assert_array_equal(pixels, plain)  # averaging leaves the iterates alone
    # float32 sums of 26 terms of size <= 3: a few ulps of 3
    np.testing.assert_allclose(averaging.average(state), np_ema(iterates, 0.9), atol=1e-5)
    assert not np.allclose(np_ema(iterates, 0.9), iterates[-1], atol=1e-2)  # it does average


def test_decay_zero_returns_the_optimiser_itself_and_a_bad_decay_is_refused():
    inner = optim.adam()
    assert averaging.averaged(inner, 0.0) is inner  # the average of decay 0 is the last iterate
    opt = averaging.averaged(inner, 0.5)
    x = jnp.ones((2, 2, 3))
    value_fn = _quadratic(jnp.zeros_like(x))
    x2, state, _ = optimizer_step(opt, value_fn, opt.init(x, value_fn(x)), x, 0.5, True)
    # one update: m = 0.5 * 0.5 x + 0.5 x2, bias-corrected by 1 - 0.25
    np.testing.assert_allclose(averaging.average(state), (0.25 * x + 0.5 * x2) / 0.75, rtol=1e-6)
    with pytest.raises(ValueError, match="decay"):
        averaging.averaged(optim.adam(), 1.0)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_the_engine_returns_each_runs_own_numpy_ema(tiny_params, optimizer):
    rng = np.random.default_rng(1)
    contents = list(rng.random((2, SIZE, SIZE, 3)).astype(np.float32))
    styles = list(rng.random((2, SIZE, SIZE, 3)).astype(np.float32))
    layers = {"content_layers": ("conv2_1",), "style_layers": ("conv1_1", "conv2_1")}
    runs = [
        Run(content=0, style=0, learning_rate=3.0 if optimizer == "adam" else 1.0, **layers),
        Run(content=1, style=1, style_weight=300.0, **layers),
    ]
    decays = {"adam": 0.8, "lbfgs": 0.5}
    program = engine.Program(**layers, optimizer=optimizer, average_decay=decays[optimizer])
    built = build.build(tiny_params, program, runs, contents, styles)
    iterates = [np.asarray(built.pixels)]

    def keep(done, state, rows):
        iterates.append(np.asarray(state.pixels))

    steps = 6
    out = engine.optimize(
        tiny_params, program, built, steps, loop="python", chunk=1, hooks=Hooks(on_chunk=keep)
    )
    assert len(iterates) == steps + 1
    expected = np_ema(iterates, decays[optimizer])
    scale = np.max(np.abs(np.stack(iterates)))
    np.testing.assert_allclose(out.pixels, expected, atol=1e-5 * scale)  # float32 EMA
    plain = engine.optimize(
        tiny_params, engine.Program(**layers, optimizer=optimizer), built, steps, loop="python"
    )
    np.testing.assert_allclose(plain.pixels, iterates[-1], rtol=1e-5, atol=1e-3)


def test_options_check_the_decay_and_the_optimizer():
    validate_options(Options(average_decay=0.99))
    for bad in (1.0, -0.1, "0.9", True):
        with pytest.raises(NstjaxError, match="average-decay"):
            validate_options(Options(average_decay=bad))
    with pytest.raises(NstjaxError, match="lbfgs_wolfe"):
        validate_options(Options(average_decay=0.9, optimizer="lbfgs_wolfe"))
