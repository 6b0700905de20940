"""Mixing style losses: a run's loss spec, the checks, and the weighted sum over losses and layers.

A run names its style losses as ``"gram"`` or a weighted mix ``"gram:1,sliced_wasserstein:0.5"``
(:func:`parse_style_loss`); a program computes only the losses some run weights
(:func:`check_style_losses` at build time); the loss of one image is the weighted sum of each
loss's score at each layer (:func:`family_style_loss`, :func:`program_style_loss`). The losses
themselves are in :mod:`nstjax.style_losses`.
"""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nstjax import kernels, losses
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


def check_style_losses(names: Sequence[str], guided: bool = False) -> None:
    """Raises :class:`NstjaxError` for an unknown name, or a loss without mask support when
    ``guided`` (call it when building a program, before anything compiles)."""
    for name in names:
        if name not in STYLE_LOSSES:
            raise NstjaxError(f"style-loss: unknown loss {name!r} (valid names: {_valid_names()})")
        if guided and not STYLE_LOSSES[name].supports_masks:
            masked = ", ".join(n for n, loss in STYLE_LOSSES.items() if loss.supports_masks)
            raise NstjaxError(
                f"style-loss {name!r} does not support masks (guided transfer supports: {masked})"
            )


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
    features: Mapping[str, jax.Array], names: Sequence[str], layers: Sequence[str], mask=None
) -> dict[str, dict[str, Representation]]:
    """``{loss: {layer: target(features[layer])}}`` of one style image."""
    return {
        name: {layer: STYLE_LOSSES[name].target(features[layer], mask) for layer in layers}
        for name in names
    }


def family_style_loss(
    features: Mapping[str, jax.Array],
    targets: Mapping[str, Mapping[str, Representation]],
    layer_weights: jax.Array,
    loss_weights: jax.Array,
    key: jax.Array | None,
    masks: Mapping[str, jax.Array] | None = None,
    normalize: jax.Array | None = None,
    scale: jax.Array = 1.0,
    *,
    losses: tuple[str, ...],
) -> jax.Array:
    """``sum_i sum_l loss_weights[i] layer_weights[l] score_i(F_l, T_il, fold_in(key, 16 i + l))``.

    Args:
        features: layer name to ``[h, w, C]`` (one image).
        targets: loss name to layer name to that loss's target at that layer (``[K, ...]`` per
            region with ``masks``); the layers of ``targets[name]`` are the ones scored.
        layer_weights: ``[16]``, indexed by the layer's position in conv1_1 ... conv5_4.
        loss_weights: ``[len(losses)]``, aligned with ``losses``.
        key: a PRNG key (the engine's ``fold_in(run_key, step)``); ``None`` if no loss needs one.
        masks: optional layer name to ``[K, h, w]`` region masks (guided transfer).
        normalize: optional traced flag: L1-normalise each term's gradient
            (:func:`nstjax.losses.normalized_gradient`).
        scale: the weight this sum will be multiplied by (the style weight), for ``normalize``.
        losses: the static tuple of loss names computed (nothing else is).

    Returns:
        A float32 scalar.
    """
    check_style_losses(losses, guided=masks is not None)
    total = jnp.float32(0.0)
    for i, name in enumerate(losses):
        loss = STYLE_LOSSES[name]
        if loss.needs_key and key is None:
            raise ValueError(f"style loss {name!r} needs a PRNG key")
        for layer, target in targets[name].items():
            index = LAYER_INDEX[layer]
            weight = loss_weights[i] * layer_weights[index]
            f = features[layer]
            if normalize is not None:
                f = normalized_gradient(f, weight * scale, normalize)
            k = jax.random.fold_in(key, i * len(LAYER_NAMES) + index) if loss.needs_key else None
            if masks is None:
                value = loss.score(f, target, k)
            else:
                per_region = jax.vmap(lambda t, m: loss.score(f, t, k, m))  # noqa: B023
                value = jnp.sum(per_region(target, masks[layer]))
            total = total + weight * value
    return total


def program_style_loss(program, feats, hyper, targets, step) -> jax.Array:
    """The weighted sum of an ``engine.Program``'s style losses for ONE run (the Gram loss on its
    own path, with the kernel that goes with the convolution; the others through
    :func:`family_style_loss`); ``hyper`` and ``targets`` are the run's ``engine.Hyper`` and
    ``engine.Targets``, ``step`` folds into its key. (Feed-forward training passes its
    ``Objective``, ``Hyper`` and ``Targets`` of :mod:`nstjax.feedforward.step`, which carry the
    same fields.)"""
    names = program.style_losses
    weights = hyper.style_loss_weights
    masks = targets.masks if program.guided else None
    norm = hyper.normalize_gradients
    style = jnp.float32(0.0)
    if "gram" in names:
        scale = hyper.style_weight
        weight = None if weights is None else weights[names.index("gram")]
        gram = losses.weighted_style_loss(
            feats,
            targets.style,
            hyper.style_layer_weights,
            masks,
            norm,
            scale if weight is None else scale * weight,
            product=kernels.gram_product(program.convolution),
        )
        style = gram if weight is None else weight * gram
    others = tuple(n for n in names if n != "gram")
    if others:
        index = jnp.asarray([names.index(n) for n in others])
        key = None
        if hyper.style_key is not None:
            key = jax.random.fold_in(jax.random.wrap_key_data(hyper.style_key), step)
        style = style + family_style_loss(
            feats,
            targets.family,
            hyper.style_layer_weights,
            jnp.ones(len(others)) if weights is None else weights[index],
            key,
            masks,
            norm,
            hyper.style_weight,
            losses=others,
        )
    return style
