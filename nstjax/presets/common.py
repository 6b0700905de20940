"""What every preset is made of: the :class:`Preset` record, the fields a preset sets, the layer
choice and the sources cited by more than one preset."""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from nstjax.architecture import CHANNELS, check_layer_names, downsampling

OPTION_NAMES = (
    "optimizer",
    "pooling",
    "steps",
    "size",
    "lbfgs_history",
    "multiscale",
    "average_decay",
)
"""The static (per-batch) options a preset sets beside its :class:`nstjax.api.Run` fields."""

RUN_FIELDS = (
    "content_weight",
    "style_weight",
    "tv_weight",
    "content_layers",
    "style_layers",
    "learning_rate",
    "init",
    "noise_scale",
    "style_loss",
)
"""The :class:`nstjax.Run` fields a preset sets."""

PAPER = (
    "Gatys, Ecker, Bethge, 'Image Style Transfer Using Convolutional Neural Networks', CVPR 2016"  # noqa: E501
)
NOTEBOOK = "leongatys/PytorchNeuralStyleTransfer@be6c8e2 NeuralStyleTransfer.ipynb"
SYNTHESIS = "leongatys/NeuralImageSynthesis@cced0b9 ExampleNotebooks/BasicStyleTransfer.ipynb"
NEURAL_STYLE = "jcjohnson/neural-style@07c4b82 neural_style.lua"
TORCH_OPTIM = "torch/optim@a5ceed7 lbfgs.lua"
TORCH_LBFGS = "torch.optim.LBFGS defaults (history_size=100, lr=1, no line search)"
PAPER_SECTION = f"{PAPER}, section 2"


@dataclasses.dataclass(frozen=True)
class Preset:
    """A reference implementation's objective and settings.

    Attributes:
        name: one of :data:`PRESET_NAMES`.
        run: values of :data:`RUN_FIELDS` (weights, layer-weight mappings, step, init, noise).
        options: static options (:data:`OPTION_NAMES`): optimizer, pooling, steps, size (the
            output's longer side), lbfgs_history, multiscale (``((size, steps), ...)`` or None).
        sources: the citation of every key of ``run`` and ``options``.
        differences: what nstjax does not reproduce of the reference.
    """

    name: str
    run: dict[str, Any]
    options: dict[str, Any]
    sources: dict[str, str]
    differences: tuple[str, ...]


def feature_shape(layer: str, shape: tuple[int, int], channels=CHANNELS) -> tuple[int, int, int]:
    """``(h, w, C)`` of a layer's activation for an ``(H, W)`` input (2x2 VALID pooling floors)."""
    factor = downsampling(layer)
    return shape[0] // factor, shape[1] // factor, channels[layer]


Layers = Sequence[str] | Mapping[str, float] | None


def layer_choice(layers: Layers, default: Sequence[str], names_weight) -> dict[str, float]:
    """The user's layer choice as ``{layer: weight}``: ``None`` is the preset's ``default``
    names; names get ``names_weight(count)`` each (the reference's convention); a mapping's
    weights multiply the formula's per-layer constants."""
    if layers is None:
        layers = default
    if isinstance(layers, str):
        layers = [n.strip() for n in layers.split(",") if n.strip()]
    if isinstance(layers, Mapping):
        chosen = {n: float(w) for n, w in layers.items()}
    else:
        names = list(layers)
        chosen = {n: names_weight(len(names)) for n in names}
    check_layer_names(chosen, "layers")
    return chosen


def equal(count: int) -> float:
    return 1.0 / count


def each(count: int) -> float:
    del count
    return 1.0


def split(name, values, differences) -> Preset:
    run = {k: v for k, (v, _) in values.items() if k not in OPTION_NAMES}
    options = {k: v for k, (v, _) in values.items() if k in OPTION_NAMES}
    sources = {k: src for k, (_, src) in values.items()}
    return Preset(name, run, options, sources, tuple(differences))
