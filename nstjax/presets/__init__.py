"""Presets: the objectives and settings of the reference implementations, in nstjax's terms.

nstjax's losses are means (:mod:`nstjax.losses`): ``content_loss = mean((F - P)^2)``, each style
layer ``mean((G - A)^2)`` with ``G = F^T F / (h w C)``, ``tv_loss = (sum dy^2 + sum dx^2) / (H W)``.
A reference's formula is expressed *exactly* by the per-layer weights (and the three term
weights), so a preset is plain data: per-run values that a batch can mix. A sum is ``h w C``
times a mean, so some presets' run fields depend on the output shape (``preset_values(name,
shape)``, :data:`Entry.size_dependent`); their static options never do (:func:`static_options`).
A new preset is a module of this package with a builder function and its options, and one
:class:`Entry` in ``_PRESETS``.

Conversions used below, for a layer with ``h x w`` positions and ``C`` channels (``M = h w``):

- ``sum((F - P)^2) = h w C * content_loss``;
- the unnormalised Gram ``F^T F = M C G``, so ``sum((F^T F - A_raw)^2) = M^2 C^2 * C^2 * mean(..)``
  when the style image has the output's size (the paper's formula assumes it);
- Gatys' notebook Gram ``F^T F / M = C G``, so its ``MSE = C^2 * mean((G - A)^2)``;
- neural-style's Gram ``F^T F / (C H W)`` is nstjax's: its ``MSE`` is ``style_layer_loss``.

Each preset's :attr:`Preset.sources` cites, per value, the file and lines (or notebook cell, by
its ``In [n]`` label) it comes from, after pystiche_papers' ``hyper_parameters()`` habit; the
commits are those of the copies read (the repositories' latest). :attr:`Preset.differences`
states what nstjax does not reproduce.
"""

import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from nstjax.architecture import CHANNELS
from nstjax.errors import NstjaxError
from nstjax.presets.common import (  # noqa: F401  (the package's interface)
    OPTION_NAMES,
    RUN_FIELDS,
    Layers,
    Preset,
    feature_shape,
)
from nstjax.presets.crowsonkb import CROWSONKB_OPTIONS, CROWSONKB_SCALES, crowsonkb  # noqa: F401
from nstjax.presets.own import NSTJAX_OPTIONS, nstjax
from nstjax.presets.references import (
    GATYS_OPTIONS,
    NEURAL_STYLE_OPTIONS,
    PAPER_OPTIONS,
    gatys,
    neural_style,
    paper,
)


class Entry(NamedTuple):
    """A preset: its builder (its :class:`Preset` at an output shape), its static options
    (``name -> (value, source)``, never shape-dependent: the output size is known before the
    builder runs) and whether its run fields depend on the output's size (sums, not means)."""

    build: Callable[..., Preset]
    options: Mapping[str, tuple[Any, str]]
    size_dependent: bool


_PRESETS = {
    "paper": Entry(paper, PAPER_OPTIONS, size_dependent=True),
    "gatys": Entry(gatys, GATYS_OPTIONS, size_dependent=False),
    "neural-style": Entry(neural_style, NEURAL_STYLE_OPTIONS, size_dependent=True),
    "nstjax": Entry(nstjax, NSTJAX_OPTIONS, size_dependent=False),
    "crowsonkb": Entry(crowsonkb, CROWSONKB_OPTIONS, size_dependent=False),
}
PRESET_NAMES = tuple(_PRESETS)


def check_preset_name(name: str) -> str:
    """Returns ``name`` or raises NstjaxError listing the valid ones."""
    if name not in _PRESETS:
        raise NstjaxError(
            f"preset {name!r} is unknown; valid presets are {', '.join(PRESET_NAMES)}"
        )
    return name


def static_options(name: str) -> dict[str, Any]:
    """The static options of the preset ``name`` (:data:`OPTION_NAMES`), known without a shape."""
    return {k: value for k, (value, _) in _PRESETS[check_preset_name(name)].options.items()}


def size_dependent(name: str) -> bool:
    """Whether the preset's run fields depend on the output's size (sums, not means)."""
    return _PRESETS[check_preset_name(name)].size_dependent


def preset_values(
    name: str,
    shape: tuple[int, int],
    channels: Mapping[str, int] = CHANNELS,
    *,
    content_layers: Layers = None,
    style_layers: Layers = None,
    **kwargs,
) -> Preset:
    """The preset called ``name`` for an output of ``shape``.

    Args:
        name: one of :data:`PRESET_NAMES`.
        shape: the output's ``(height, width)`` (the paper's and neural-style's sums need it).
        channels: channel count per layer (VGG-19's by default; tests pass a tiny network's).
        content_layers, style_layers: the layers to use instead of the preset's (names, or a
            mapping whose weights multiply the preset's per-layer constants); the constants of
            the reference's formula follow the layers chosen.
        **kwargs: preset-specific options, e.g. ``alpha_over_beta`` for ``"paper"``.

    Raises:
        NstjaxError: an unknown name or an option the preset does not take.
    """
    build = _PRESETS[check_preset_name(name)].build
    fixed = {"shape", "channels", "content_layers", "style_layers"}
    accepted = set(inspect.signature(build).parameters) - fixed
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        takes = ", ".join(sorted(accepted)) or "no options"
        raise NstjaxError(
            f"preset {name!r}: unknown option(s) {', '.join(unknown)} (takes {takes})"
        )
    return build(tuple(shape), channels, content_layers, style_layers, **kwargs)
