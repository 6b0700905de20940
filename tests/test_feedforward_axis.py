"""The ``loop`` network axis (tiny VGG, 16 px): K networks advanced together are bit-identical to
each advanced alone, and the network step is compiled once whatever K is (the unrolled step
holds K copies of it)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nstjax.feedforward import NetworkConfig, TrainConfig, advance, training
from nstjax.feedforward.step import NETWORK_AXES

SIZE = 16


def _setup(tiny_params, form: str, style_weight: tuple[float, ...], learning_rate=(5e-3,)):
    config = TrainConfig(
        styles=("style",),
        content_dir="-",
        size=SIZE,
        batch_size=2,
        style_weight=style_weight,
        learning_rate=learning_rate,
        network_axis=form,
        network=NetworkConfig(width=2, residual_blocks=0),
        content_layers=("conv2_1",),
        style_layers=("conv1_1", "conv2_1"),
    )
    rng = np.random.default_rng(0)
    objective = training.objective_of(config)
    style = rng.random((SIZE, SIZE, 3), np.float32)
    targets = training.style_targets(tiny_params, objective, [style] * config.num_networks)
    hyper = training.hyper_of(config, objective)
    rate = jnp.asarray(config.per_network("learning_rate"), jnp.float32)
    state = training._init_state(objective, jax.random.key(0, impl="rbg"), rate)
    return objective, state, targets, hyper


def _train(tiny_params, form, style_weight, learning_rate=(5e-3,), steps=3):
    objective, state, targets, hyper = _setup(tiny_params, form, style_weight, learning_rate)
    rng = np.random.default_rng(1)
    history = []
    for s in range(steps):
        images = jnp.asarray(rng.random((2, SIZE, SIZE, 3), np.float32))
        state, metrics, _ = advance.advance(
            state, tiny_params, objective, images, targets, hyper, jnp.int32(s)
        )
        history.append(np.asarray(metrics))
    return jax.device_get(state), np.stack(history)


def test_the_loop_is_the_default():
    assert NETWORK_AXES[0] == "loop"
    assert TrainConfig(styles=("s",), content_dir="c").network_axis == "loop"


@pytest.mark.optimized
def test_loop_networks_together_equal_each_alone(tiny_params):
    weights, rates = (0.01, 0.1, 1.0), (5e-3, 1e-2, 2e-3)
    state, history = _train(tiny_params, "loop", weights, rates)
    for k in range(3):
        alone, alone_history = _train(tiny_params, "loop", (weights[k],), (rates[k],))
        np.testing.assert_array_equal(history[:, k], alone_history[:, 0])
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(alone)):
            np.testing.assert_array_equal(a[k], b[0])
    # The settings differ, so the networks do: equality above is not that of copies.
    assert np.abs(history[-1, 0] - history[-1, 2]).max() > 0


def _convolutions(lowered) -> int:
    return lowered.as_text().count("stablehlo.convolution")


@pytest.fixture
def compiles():
    """The names of the functions XLA compiles while the test runs."""
    names: list[str] = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            names.append(kwargs.get("fun_name", ""))

    jax.monitoring.register_event_duration_secs_listener(listen)
    yield names
    jax.monitoring.unregister_event_duration_listener(listen)


def test_loop_compiles_the_network_step_once_whatever_k(tiny_params, compiles):
    advance._network_step.clear_cache()
    _train(tiny_params, "loop", (0.01, 0.02, 0.03, 0.04), steps=2)
    _train(tiny_params, "loop", (0.01, 0.02, 0.03, 0.04, 0.05, 0.06), steps=1)
    assert compiles.count("jit(network_step)") == 1
    assert "jit(train_step)" not in compiles


def test_the_unrolled_step_holds_k_copies_the_loop_one(tiny_params):
    """What the loop saves: the unrolled program grows with K (so does its compile time)."""
    images = jnp.zeros((2, SIZE, SIZE, 3), jnp.float32)
    counts = {}
    for k in (1, 3):
        objective, state, targets, hyper = _setup(tiny_params, "unroll", (0.01,) * k)
        args = (state, tiny_params, objective, images, targets, hyper, jnp.int32(0))
        counts[k] = _convolutions(advance._train_step.lower(*args))
    objective, state, targets, hyper = _setup(tiny_params, "loop", (0.01,) * 3)
    one, targets_k, hyper_k = advance._take((state, targets, hyper), jnp.int32(0))
    content = advance._content(tiny_params, objective, images)
    lowered = advance._network_step.lower(
        one, tiny_params, objective, images, content, targets_k, hyper_k, jnp.int32(0)
    )
    per_network = _convolutions(lowered)
    assert per_network > 0 and counts[3] - counts[1] == 2 * per_network
