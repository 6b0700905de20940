"""The compiled core of training: K transformation networks advanced by one step together.

Arrays in, arrays out. The loss of one network is written for one output image and ``jax.vmap``
batches it over the content batch; the K networks (their parameters, optimiser states, style
targets and weights) are then put in one program by tracing the step once per network, by a
second ``jax.vmap`` or by ``jax.lax.map``, or stepped one after another by
:mod:`nstjax.feedforward.advance` (``Objective.network_axis``). Networks never interact: each
sees the same content batch and its own everything else.
"""

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from nstjax import engine, losses, style_mix, vgg
from nstjax.feedforward.network import TransformerNet

NETWORK_AXES = ("loop", "unroll", "vmap", "map")
"""The ways K networks share the step (:class:`Objective`); the first is the default."""
METRICS = engine.METRICS
"""Columns of the per-step history: the weighted total and the three unweighted terms."""


@dataclasses.dataclass(frozen=True)
class Objective:
    """What is static about training: changing any field recompiles.

    Attributes:
        net: the transformation network.
        content_layers, style_layers: VGG-19 layers of the two losses.
        pooling: VGG's pooling.
        style_losses: the style losses computed (:data:`nstjax.style_losses.STYLE_LOSSES`, in
            that order), each at every style layer; each network weights them
            (``Hyper.style_loss_weights``), so networks with different losses share a program.
        network_axis: how the K networks share the step (:data:`NETWORK_AXES`):
            ``"loop"`` runs ONE network's compiled step K times from Python
            (:mod:`nstjax.feedforward.advance`: the executable a network trained alone runs, so
            bit-identical to it; compiled once whatever K is); ``"unroll"`` traces one
            network's step K times into one program (bit-identical; compiling grows faster
            than K); ``"vmap"`` batches them (their convolutions become grouped convolutions,
            which XLA rounds differently from one network's: equal to each trained alone up to
            rounding); ``"map"`` loops over them with ``jax.lax.map`` inside the program (one
            network's body, compiled once, but slow on XLA:CPU at real sizes).
            docs/feedforward.md has the measurements.
    """

    net: TransformerNet
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    pooling: str = "max"
    style_losses: tuple[str, ...] = ("gram",)
    network_axis: str = NETWORK_AXES[0]

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.content_layers + self.style_layers))

    @property
    def style(self) -> style_mix.StyleProgram:
        """The style losses' static part, as ``engine.Program.style``: every loss at every style
        layer, XLA's convolutions (the VGG is not prepared for another)."""
        layers = (self.style_layers,) * len(self.style_losses)
        return style_mix.StyleProgram(self.style_losses, layers, "xla")


class Hyper(NamedTuple):
    """Per-network loss weights, each ``[K]`` (``[K, 16]`` for the layer weights); the style
    ones as ``engine.Hyper`` holds a run's (:attr:`style_weights`)."""

    content_weight: jax.Array
    style_weight: jax.Array
    tv_weight: jax.Array
    content_layer_weights: jax.Array
    style_layer_weights: jax.Array
    style_loss_weights: jax.Array  # [K, len(Objective.style_losses)]
    max_nonfinite_steps: jax.Array  # [K] int32: consecutive rejected steps that stop a network
    style_key: jax.Array  # [K, 2] uint32 key data; a step's key folds in the step number

    @property
    def style_weights(self) -> style_mix.StyleWeights:
        """The style loss's weights (:func:`nstjax.style_mix.style_loss`; no gradient
        normalisation in training)."""
        return style_mix.StyleWeights(
            self.style_weight, self.style_layer_weights, self.style_loss_weights, self.style_key
        )


class Targets(NamedTuple):
    """Per-network style targets (leading axis K), as ``engine.Targets.style`` holds a run's:
    loss name -> layer name -> representation (:func:`nstjax.style_mix.targets_of`)."""

    style: dict[str, dict[str, Any]]


class TrainState(NamedTuple):
    """K networks' variables and Adam states, each leaf with a leading network axis.

    A step whose loss, gradient or result (new parameters, batch stats, Adam state) is not
    finite is *rejected* for that network: it keeps its last finite variables and state, and the
    others are unaffected. A network with ``Hyper.max_nonfinite_steps`` rejected steps in a row
    is *stopped*: it is never updated again (it is still computed with the others).
    """

    params: Any
    batch_stats: Any  # {} with instance norm
    opt_state: Any
    rejected_in_a_row: Any  # [K] int32: consecutive rejected steps (frozen once stopped)
    rejected_steps: Any  # [K] int32: rejected steps in all


def optimizer(learning_rate: jax.Array) -> optax.GradientTransformation:
    """Adam with the learning rate kept in its state (so it may differ per network)."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


def image_terms(
    feats, content_targets, style_targets: Targets, output, hyper: Hyper, objective, step
) -> jax.Array:
    """``[content, style, tv]`` of ONE stylised image (no batch or network axis).

    Args:
        feats: the output's VGG features by layer, ``[h, w, C]``.
        content_targets: the content image's features at the content layers.
        style_targets: the network's style targets.
        output: the stylised image ``[H, W, 3]`` in [0, 1].
        hyper: the network's weights (no network axis).
        objective: static.
        step: the step number, folded into the key of the losses that draw random numbers.
    """
    content = losses.weighted_content_loss(feats, content_targets, hyper.content_layer_weights)
    style = style_mix.style_loss(
        objective.style, feats, style_targets.style, hyper.style_weights, step=step
    )
    return jnp.stack([content, style, losses.tv_loss(output * 255.0)])


class ContentBatch(NamedTuple):
    """A step's content batch: the images and their VGG features at the content layers."""

    images: jax.Array  # [B, S, S, 3] in [0, 1]
    features: dict[str, jax.Array]  # layer -> [B, h, w, C]


def network_loss(
    params,
    batch_stats,
    vgg_params,
    objective: Objective,
    batch: ContentBatch,
    style_targets: Targets,
    hyper: Hyper,
    step=0,
):
    """Mean loss of ONE network over the content ``batch``, with its terms and new batch stats.

    Args:
        params: the network's parameters (what the loss is differentiated with respect to).
        batch_stats: its batch statistics (``{}`` with instance norm).
        vgg_params: the frozen VGG-19.
        objective: static.
        batch: the content images and their features.
        style_targets: the network's style targets.
        hyper: the network's weights (no network axis).
        step: the step number, folded into the key of the losses that draw random numbers.

    Returns:
        The weighted total and ``([total, content, style, tv], new batch stats)``.
    """
    images, content = batch
    variables = {"params": params, **({"batch_stats": batch_stats} if batch_stats else {})}
    if batch_stats:
        outputs, updates = objective.net.apply(
            variables, images, train=True, mutable=["batch_stats"]
        )
        batch_stats = updates["batch_stats"]
    else:
        outputs = objective.net.apply(variables, images, train=True)
    feats = vgg.features(vgg_params, outputs, objective.layers, objective.pooling)
    terms = functools.partial(image_terms, objective=objective, step=step)
    per_image = jax.vmap(terms, in_axes=(0, 0, None, 0, None))(
        feats, content, style_targets, outputs, hyper
    )
    content_loss, style_loss, tv = jnp.mean(per_image, axis=0)
    total = (
        hyper.content_weight * content_loss + hyper.style_weight * style_loss + hyper.tv_weight * tv
    )
    return total, (jnp.stack([total, content_loss, style_loss, tv]), batch_stats)


def _finite(tree) -> jax.Array:
    """Whether every float in ``tree`` is finite (a scalar bool)."""
    floats = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
    return functools.reduce(jnp.logical_and, [jnp.isfinite(x).all() for x in floats])


def network_step(
    state: TrainState, vgg_params, objective: Objective, images, content, targets, hyper, step
):
    """One Adam step of ONE network (no network axis anywhere), guarded (:class:`TrainState`).

    Returns:
        The new state, the metrics ``[4]`` (:data:`METRICS`, batch means, before the step) and
        whether the step was rejected.
    """
    grad_fn = jax.value_and_grad(network_loss, has_aux=True)
    (loss, (metrics, batch_stats)), grads = grad_fn(
        state.params,
        state.batch_stats,
        vgg_params,
        objective,
        ContentBatch(images, content),
        targets,
        hyper,
        step,
    )
    updates, opt_state = optimizer(0.0).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    active = state.rejected_in_a_row < hyper.max_nonfinite_steps
    finite = _finite((loss, grads, params, batch_stats, opt_state))
    go = active & finite
    rejected = active & ~finite

    def keep(new, old):
        return jax.tree.map(lambda a, b: jnp.where(go, a, b), new, old)

    new = TrainState(
        params=keep(params, state.params),
        batch_stats=keep(batch_stats, state.batch_stats),
        opt_state=keep(opt_state, state.opt_state),
        rejected_in_a_row=jnp.where(
            active, jnp.where(finite, 0, state.rejected_in_a_row + 1), state.rejected_in_a_row
        ),
        rejected_steps=state.rejected_steps + rejected.astype(jnp.int32),
    )
    return new, metrics, rejected


def train_step(
    state: TrainState, vgg_params, objective: Objective, images, targets: Targets, hyper, step
):
    """One Adam step of every network on the content batch ``images`` ``[B, S, S, 3]``.

    Args:
        state: K networks (leading axis K on every leaf).
        vgg_params: the frozen VGG-19 (unprepared: plain XLA convolutions).
        objective: static.
        images: the content batch in [0, 1], shared by all networks.
        targets: each network's style targets (leading axis K).
        hyper: each network's weights.
        step: the number of steps done before this one (int32, traced).

    Returns:
        The new state, the metrics ``[K, 4]`` (:data:`METRICS`, batch means, before the step)
        and ``[K]`` bool: which networks' steps were rejected (non-finite).
    """
    if objective.network_axis == "loop":
        raise ValueError('network_axis "loop" is a loop over network_step (feedforward.advance)')
    content = vgg.features(vgg_params, images, objective.content_layers, objective.pooling)

    def one(args):
        state, targets, hyper = args
        return network_step(state, vgg_params, objective, images, content, targets, hyper, step)

    args = (state, targets, hyper)
    if objective.network_axis == "vmap":
        return jax.vmap(lambda *a: one(a))(*args)
    if objective.network_axis == "map":
        return jax.lax.map(one, args)
    count = hyper.content_weight.shape[0]
    per_network = [one(jax.tree.map(lambda x, k=k: x[k], args)) for k in range(count)]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *per_network)


def init_state(objective: Objective, key: jax.Array, learning_rate: jax.Array) -> TrainState:
    """K fresh networks, all initialised alike from ``key`` (so network ``k`` of a K-network run
    starts where the same setting trained alone starts).

    Args:
        objective: static.
        key: a PRNG key.
        learning_rate: ``[K]`` Adam step sizes.
    """
    variables = objective.net.init(key, jnp.zeros((1, 16, 16, 3), jnp.float32))
    count = learning_rate.shape[0]
    stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (count, *x.shape)), dict(variables))
    params, batch_stats = stacked["params"], stacked.get("batch_stats", {})
    opt_state = jax.vmap(lambda p, lr: optimizer(lr).init(p))(params, learning_rate)
    zeros = jnp.zeros((count,), jnp.int32)
    return TrainState(params, batch_stats, opt_state, zeros, zeros)


def stylise(variables, net: TransformerNet, images: jax.Array) -> jax.Array:
    """ONE network's outputs for ``images`` ``[N, H, W, 3]`` (inference: running averages)."""
    return net.apply(variables, images, train=False)
