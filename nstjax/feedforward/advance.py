"""One training step of K networks, in the form ``Objective.network_axis`` names.

The in-graph forms (``"unroll"``, ``"vmap"``, ``"map"``) are one compiled call of
:func:`nstjax.feedforward.step.train_step`. ``"loop"`` is a Python loop over one compiled
network step (:func:`nstjax.feedforward.step.network_step`, compiled once whatever K is): the
content features are computed once per step by their own compiled call, then each network's
variables are taken from the stacked state, advanced, and written back in place. Every network
runs the very executable a network trained alone runs (same shapes, same program), so network
``k`` of K is bit-identical to it trained alone, and compiling costs one network's program
whatever K is; the price is 3K + 2 dispatches a step (a slice, a step and a write per
network, the content features and the stacked metrics).
"""

import functools

import jax

from nstjax import vgg
from nstjax.feedforward import step


@functools.partial(jax.jit, static_argnums=1)
def _content(vgg_params, objective: step.Objective, images: jax.Array):
    return vgg.features(vgg_params, images, objective.content_layers, objective.pooling)


@jax.jit
def _take(tree, k: jax.Array):
    """Network ``k``'s slice of every leaf (``k`` traced: one program for every k)."""
    return jax.tree.map(lambda x: x[k], tree)


@functools.partial(jax.jit, donate_argnums=0)
def _put(tree, one, k: jax.Array):
    """``tree`` with network ``k``'s slice replaced by ``one`` (in place: ``tree`` is donated)."""
    return jax.tree.map(lambda x, y: x.at[k].set(y), tree, one)


_network_step = jax.jit(step.network_step, static_argnums=2, donate_argnums=0)
_stack = jax.jit(lambda trees: jax.tree.map(lambda *x: jax.numpy.stack(x), *trees))
_train_step = jax.jit(step.train_step, static_argnums=2, donate_argnums=0)


def _loop(state, vgg_params, objective, images, targets, hyper, done):
    content = _content(vgg_params, objective, images)
    results = []
    for k in range(hyper.content_weight.shape[0]):
        index = jax.numpy.int32(k)
        one, targets_k, hyper_k = _take((state, targets, hyper), index)
        one, metrics_k, rejected_k = _network_step(
            one, vgg_params, objective, images, content, targets_k, hyper_k, done
        )
        state = _put(state, one, index)
        results.append((metrics_k, rejected_k))
    return state, *_stack(results)


def advance(
    state: step.TrainState,
    vgg_params,
    objective: step.Objective,
    images: jax.Array,
    targets: step.Targets,
    hyper: step.Hyper,
    done: jax.Array,
):
    """One Adam step of every network (:func:`nstjax.feedforward.step.train_step`'s arguments
    and results); ``state`` is donated.

    Args:
        state: K networks (leading axis K on every leaf).
        vgg_params: the frozen VGG-19 (unprepared: plain XLA convolutions).
        objective: static; its ``network_axis`` picks the form.
        images: the content batch ``[B, S, S, 3]`` in [0, 1], shared by all networks.
        targets: each network's style targets (leading axis K).
        hyper: each network's weights.
        done: the number of steps done before this one (int32).

    Returns:
        The new state, the metrics ``[K, 4]`` and ``[K]`` bool: the rejected steps.
    """
    if objective.network_axis == "loop":
        return _loop(state, vgg_params, objective, images, targets, hyper, done)
    return _train_step(state, vgg_params, objective, images, targets, hyper, done)
