"""The fields of a config that describe ``nstjax stylize``'s runs beyond a grid of pairs: a blend
of every style (``data.style_blend``), spatial masks (``data.masks``) and a coarse-to-fine
schedule (``optim.multiscale``), each checked with one-line problems."""

import math
from collections.abc import Sequence

import ml_collections

BLEND_FIELDS = ("data.style_blend", "data.masks")
"""Fields that turn every content's pairs into one run blending all styles."""


def blend_weights(
    config: ml_collections.ConfigDict, styles: Sequence[str], problems: list[str]
) -> tuple[float, ...]:
    """One weight per style when the config blends the styles (``()``: no blend).

    ``data.masks`` without ``data.style_blend`` blends with equal weights.
    """
    weights, masks = list(config.data.style_blend), list(config.data.masks)
    if not weights and not masks:
        return ()
    if weights and len(weights) != len(styles):
        problems.append(f"data.style_blend: {len(weights)} weight(s) for {len(styles)} style(s)")
    if masks and len(masks) != len(styles):
        problems.append(f"data.masks: {len(masks)} mask(s) for {len(styles)} style(s)")
    if not all(isinstance(m, str) and m for m in masks):
        problems.append(f"data.masks: expected image files, got {masks!r}")
    numbers = all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights)
    if not numbers or not all(math.isfinite(w) and w >= 0 for w in weights):
        problems.append(f"data.style_blend: weights must be finite and >= 0, got {weights!r}")
    elif weights and not sum(weights) > 0:
        problems.append(f"data.style_blend {' '.join(map(str, weights))}: the weights are all 0")
    if config.data.pairing != "product":
        problems.append("data.pairing: a blend uses every style with each content; use 'product'")
    return tuple(float(w) for w in weights) or (1.0,) * len(masks)


def schedule(config: ml_collections.ConfigDict, problems: list[str]) -> tuple[tuple[int, int], ...]:
    """``optim.multiscale`` as ``((size, steps), ...)`` (``()``: one scale)."""
    value = config.optim.multiscale
    try:
        scales = tuple((int(size), int(steps)) for size, steps in value)
        exact = all(
            not isinstance(x, bool) and isinstance(x, int) and x >= 1 for s in value for x in s
        )
    except (TypeError, ValueError):
        scales, exact = (), False
    if not exact or [s for s, _ in scales] != sorted(s for s, _ in scales):
        problems.append(
            "optim.multiscale: expected [[size, steps], ...] with positive integers and growing "
            f"sizes, got {value!r}"
        )
        return ()
    return scales
