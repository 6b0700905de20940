"""Mixing style losses: a run's loss spec, the checks, and the weighted sum over losses and layers.

A run names its style losses as ``"gram"`` or a weighted mix ``"gram:1,sliced_wasserstein:0.5"``
(:func:`parse_style_loss`); a program computes only the losses some run weights
(:func:`check_style_losses` at build time); the loss of one image is the weighted sum of each
loss's score at each layer (:func:`style_loss`), every loss's target computed by
:func:`targets_of` and blended over style images by :func:`blend`. The engine and feed-forward
training share this path: their static part gives a :class:`StyleProgram`, their weights a
:class:`StyleWeights`. The losses themselves are in :mod:`nstjax.style_losses`.
"""

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nstjax import kernels
from nstjax.architecture import LAYER_INDEX, LAYER_NAMES
from nstjax.errors import NstjaxError
from nstjax.losses import normalized_gradient
from nstjax.style_losses import STYLE_LOSSES, Representation


def _valid_names() -> str:
    return ", ".join(STYLE_LOSSES)


def parse_style_loss(spec: str | Mapping[str, float], option: str = "style-loss") -> dict:
    """A loss mix from ``"gram"``, ``"gram:1,sliced_wasserstein:0.5"`` or a mapping.

    Args:
        spec: loss names, each optionally ``:weight`` (default 1), comma-separated; or a mapping
            from name to weight.
        option: the option or field named in error messages.

    Returns:
        ``{name: weight}`` in the order given, weights finite and >= 0, names unique.

    Raises:
        NstjaxError: unknown names, malformed or repeated entries, negative or non-finite
            weights, an empty spec; the one-line message lists the valid names.
    """

    def bad(what: str) -> NstjaxError:
        return NstjaxError(
            f"{option} {spec!r}: {what} (expected NAME[:WEIGHT],... with NAME one of "
            f"{_valid_names()})"
        )

    if isinstance(spec, Mapping):
        items = [(str(k), v) for k, v in spec.items()]
    elif isinstance(spec, str):
        items = []
        for part in spec.split(","):
            name, sep, weight = part.strip().partition(":")
            items.append((name.strip(), weight.strip() if sep else 1.0))
    else:
        raise bad("not a spec string or a mapping")
    mix: dict[str, float] = {}
    for name, weight in items:
        if name not in STYLE_LOSSES:
            raise bad(f"unknown loss {name!r}")
        if name in mix:
            raise bad(f"{name!r} given twice")
        try:
            value = float(weight)
        except (TypeError, ValueError):
            raise bad(f"weight {weight!r} of {name!r} is not a number") from None
        if not (np.isfinite(value) and value >= 0):
            raise bad(f"weight of {name!r} must be finite and >= 0")
        mix[name] = value
    if not mix:
        raise bad("no loss given")
    return mix


def check_style_losses(names: Sequence[str], guided: bool = False, blended: bool = False) -> None:
    """Raises :class:`NstjaxError` for an unknown name, a loss without mask support when
    ``guided``, or one that takes a single style image when ``blended`` (several styles without
    masks); call it when building a program, before anything compiles."""
    for name in names:
        if name not in STYLE_LOSSES:
            raise NstjaxError(f"style-loss: unknown loss {name!r} (valid names: {_valid_names()})")
        if guided and not STYLE_LOSSES[name].supports_masks:
            masked = ", ".join(n for n, loss in STYLE_LOSSES.items() if loss.supports_masks)
            raise NstjaxError(
                f"style-loss {name!r} does not support masks (guided transfer supports: {masked})"
            )
        if blended and STYLE_LOSSES[name].blend is None:
            blending = ", ".join(n for n, loss in STYLE_LOSSES.items() if loss.blend is not None)
            raise NstjaxError(
                f"style-loss {name!r} takes one style image; blends of several styles work "
                f"with: {blending}"
            )


@dataclasses.dataclass(frozen=True)
class StyleProgram:
    """What is static about a program's style losses (``engine.Program.style``; feed-forward
    training's ``Objective.style``): changing any field recompiles.

    Attributes:
        losses: the losses computed, in :data:`~nstjax.style_losses.STYLE_LOSSES` order.
        layers: for each of ``losses``, the layers it is computed at.
        convolution: the convolution the parameters are prepared for; the Gram products use
            the kernel that goes with it (:func:`nstjax.kernels.gram_product`).
    """

    losses: tuple[str, ...] = ("gram",)
    layers: tuple[tuple[str, ...], ...] = ()
    convolution: str = "xla"

    def layers_of(self, name: str) -> tuple[str, ...]:
        """The layers the loss ``name`` is computed at."""
        return self.layers[self.losses.index(name)]

    def options(self, name: str) -> dict:
        """The keyword arguments ``name``'s target and score take in this program."""
        if STYLE_LOSSES[name].takes_product:
            return {"product": kernels.gram_product(self.convolution)}
        return {}


class StyleWeights(NamedTuple):
    """One run's (or network's) traced style weights, as :func:`style_loss` takes them.

    Attributes:
        style_weight: the weight the style loss is multiplied by (for ``normalize``).
        layer_weights: ``[16]``, indexed by the layer's position in conv1_1 ... conv5_4.
        loss_weights: ``[len(StyleProgram.losses)]``; ``None``: all 1.
        key: ``[2]`` uint32 key data; a step's key folds in the step (``None`` if no loss
            needs one).
        normalize: optional traced flag: L1-normalise each term's gradient
            (:func:`nstjax.losses.normalized_gradient`).
    """

    style_weight: jax.Array
    layer_weights: jax.Array
    loss_weights: jax.Array | None = None
    key: jax.Array | None = None
    normalize: jax.Array | None = None


def stack(representations: Sequence[Representation]) -> Representation:
    """Stacks one loss's representations (of one layer) over runs on a new leading axis; point
    sets (dicts with ``"valid"``) are padded with invalid rows to the largest count first."""
    first = representations[0]
    if isinstance(first, dict) and "valid" in first:
        m = max(r["valid"].shape[0] for r in representations)

        def pad(x):
            return jnp.pad(x, [(0, m - x.shape[0])] + [(0, 0)] * (x.ndim - 1))

        representations = [jax.tree.map(pad, r) for r in representations]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *representations)


def targets_of(
    features: Mapping[str, jax.Array], program: StyleProgram
) -> dict[str, dict[str, Representation]]:
    """``{loss: {layer: target(features[layer])}}`` of one style image, for each of the
    program's losses at its layers."""
    return {
        name: {
            layer: STYLE_LOSSES[name].target(features[layer], **program.options(name))
            for layer in program.layers_of(name)
        }
        for name in program.losses
    }


def blend(name: str, targets: Sequence[Representation], weights: Sequence[float]):
    """The loss ``name``'s target for a blend of style images, from theirs and the blend's
    weights (summing to 1); a loss without a ``blend`` takes the first style's (such a loss has
    weight 0 in a run that blends: :func:`check_style_losses`)."""
    combine = STYLE_LOSSES[name].blend
    return targets[0] if combine is None else combine(list(targets), list(weights))


def _key_streams(losses: Sequence[str]) -> dict[str, int]:
    """Each loss's random stream: its position among the program's losses after ``"gram"``
    (first in the registry and drawing none; the numbering results have always been drawn with)."""
    return {name: i for i, name in enumerate(n for n in losses if n != "gram")}


def style_loss(
    program: StyleProgram,
    features: Mapping[str, jax.Array],
    targets: Mapping[str, Mapping[str, Representation]],
    weights: StyleWeights,
    masks: Mapping[str, jax.Array] | None = None,
    step: jax.Array | int = 0,
) -> jax.Array:
    """The style loss of ONE image: ``sum_i sum_l a_i w_l score_i(F_l, T_il, key_il)``.

    Each loss's terms are summed over its layers, then the losses' sums in order. The key of
    loss ``i`` at layer ``l`` is ``fold_in(fold_in(weights.key, step), 16 s_i + l)``, ``s_i``
    its random stream (:func:`_key_streams`).

    Args:
        program: the static part (losses, their layers, the convolution).
        features: layer name to ``[h, w, C]``.
        targets: loss name to layer name to its target there (``[K, ...]``, one per region,
            with ``masks``), as :func:`targets_of` and :func:`blend` give them.
        weights: the run's weights.
        masks: optional layer name to ``[K, h, w]`` region masks (guided transfer).
        step: folded into the key.

    Returns:
        A float32 scalar.
    """
    check_style_losses(program.losses, guided=masks is not None)
    key = None
    if weights.key is not None:
        key = jax.random.fold_in(jax.random.wrap_key_data(weights.key), step)
    streams = _key_streams(program.losses)
    total = jnp.float32(0.0)
    for i, name in enumerate(program.losses):
        loss = STYLE_LOSSES[name]
        if loss.needs_key and key is None:
            raise ValueError(f"style loss {name!r} needs a PRNG key")
        score = functools.partial(loss.score, **program.options(name))
        loss_weight = 1.0 if weights.loss_weights is None else weights.loss_weights[i]
        subtotal = jnp.float32(0.0)
        for layer, target in targets[name].items():
            index = LAYER_INDEX[layer]
            weight = loss_weight * weights.layer_weights[index]
            f = features[layer]
            if weights.normalize is not None:
                f = normalized_gradient(f, weight * weights.style_weight, weights.normalize)
            k = None
            if loss.needs_key:
                k = jax.random.fold_in(key, streams[name] * len(LAYER_NAMES) + index)
            if masks is None:
                value = score(f, target, k)
            else:
                per_region = jax.vmap(lambda t, m: score(f, t, k, m))  # noqa: B023
                value = jnp.sum(per_region(target, masks[layer]))
            subtotal = subtotal + weight * value
        total = total + subtotal
    return total
