"""Presets: the objectives and settings of the reference implementations, in nstjax's terms.

nstjax's losses are means (:mod:`nstjax.losses`): ``content_loss = mean((F - P)^2)``, each style
layer ``mean((G - A)^2)`` with ``G = F^T F / (h w C)``, ``tv_loss = (sum dy^2 + sum dx^2) / (H W)``.
A reference's formula is expressed *exactly* by the per-layer weights (and the three term
weights), so a preset is plain data: per-run values that a batch can mix. A sum is ``h w C``
times a mean, so some presets' run fields depend on the output shape (``preset_values(name,
shape)``, :data:`Entry.size_dependent`); their static options never do (:func:`static_options`).
A new preset is a builder function, its options and one :class:`Entry` in ``_PRESETS``.

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

import dataclasses
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from nstjax.architecture import (
    CHANNELS,
    CONTENT_LAYER,
    STYLE_LAYERS,
    check_layer_names,
    downsampling,
)
from nstjax.errors import NstjaxError
from nstjax.run import DEFAULT_SIZE, Options, Run

OPTION_NAMES = ("optimizer", "pooling", "steps", "size", "lbfgs_history", "multiscale")
"""The static (per-batch) options a preset sets beside its :class:`nstjax.api.Run` fields."""

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


def _chosen(layers: Layers, default: Sequence[str], names_weight) -> dict[str, float]:
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


def _equal(count: int) -> float:
    return 1.0 / count


def _each(count: int) -> float:
    del count
    return 1.0


def _split(name, values, differences) -> Preset:
    run = {k: v for k, (v, _) in values.items() if k not in OPTION_NAMES}
    options = {k: v for k, (v, _) in values.items() if k in OPTION_NAMES}
    sources = {k: src for k, (_, src) in values.items()}
    return Preset(name, run, options, sources, tuple(differences))


PAPER_OPTIONS = {
    "optimizer": ("lbfgs_wolfe", f"{PAPER_SECTION}: L-BFGS (no step rule); see the differences"),
    "pooling": ("avg", f"{PAPER_SECTION}: max pooling replaced by average pooling"),
    "lbfgs_history": (100, f"{TORCH_OPTIM} line 44 (nCorrection 100)"),
    "steps": (500, f"{SYNTHESIS} In [3]: max_iter = 500 (the paper gives none)"),
    "size": (512, f"{PAPER_SECTION}: about 512 x 512; {SYNTHESIS} In [3]: img_size = 512"),
    "multiscale": (None, f"{PAPER_SECTION}: one scale"),
}


def paper(
    shape: tuple[int, int],
    channels: Mapping[str, int] = CHANNELS,
    content_layers: Layers = None,
    style_layers: Layers = None,
    alpha_over_beta: float = 1e-3,
) -> Preset:
    """Gatys et al. 2016's formulas as printed.

    ``L = alpha * 1/2 sum (F - P)^2 + beta * sum_l w_l / (4 N_l^2 M_l^2) sum (G_raw - A_raw)^2``
    with ``w_l = 1/5`` on conv1_1 ... conv5_1 (``1/n`` on any ``n`` named layers), content at
    conv4_2, no TV. alpha = 1 and beta = 1 / ``alpha_over_beta`` (the paper gives only the
    ratio: 1e-3 and 1e-4 for the main figures, 1e-5 ... 1e-1 for its grid). The per-layer
    constants follow the layers chosen: ``--content-layers conv2_2`` gets conv2_2's ``h w C / 2``.
    """
    content = {}
    for layer, weight in _chosen(content_layers, (CONTENT_LAYER,), _equal).items():
        h, w, c = feature_shape(layer, shape, channels)
        content[layer] = weight * 0.5 * h * w * c  # 1/2 sum = 1/2 h w C mean
    # 1/(4 N^2 M^2) * M^2 N^2 * N^2 mean = N^2 / 4 mean, times w_l
    style = {
        layer: weight * channels[layer] ** 2 / 4.0
        for layer, weight in _chosen(style_layers, STYLE_LAYERS, _equal).items()
    }
    eq = PAPER_SECTION
    values = {
        "content_weight": (1.0, f"{eq}, eq. 7 (alpha; only alpha/beta is given)"),
        "style_weight": (1.0 / alpha_over_beta, f"{eq}, eq. 7 and figure captions (alpha/beta)"),
        "tv_weight": (0.0, f"{eq}, eq. 7 (no TV term)"),
        "content_layers": (content, f"{eq}, eq. 1 (1/2 sum of squares) at conv4_2 (section 3)"),
        "style_layers": (style, f"{eq}, eqs. 4-5 (E_l = sum/(4 N^2 M^2), w_l = 1/5, section 3)"),
        "init": ("noise", f"{eq}: synthesis starts from white noise"),
        "noise_scale": (1.0, f"{SYNTHESIS} In [5]: randn on the preprocessed image"),
        "learning_rate": (1.0, f"{TORCH_OPTIM} line 47 (learningRate 1, no line search)"),
        **PAPER_OPTIONS,
    }
    differences = (
        "The paper's network is a normalised VGG-19 (each filter rescaled to mean activation 1 "
        "over ImageNet; NeuralImageSynthesis' 'norm_pad' model); nstjax has the original "
        "weights ('org_pad'), so the printed alpha/beta do not give the paper's balance.",
        "The paper's Gram formula compares raw Grams, which assumes a style image of the "
        "output's size; nstjax compares size-normalised Grams (the same value at equal sizes).",
        f"The authors' code runs L-BFGS with a fixed step ({TORCH_OPTIM} line 47); on these sums "
        "with the original weights that step diverges from noise (docs/gallery.md: at 64 px "
        "4 of the 5 alpha/beta runs end at their start or fail), so the preset takes the "
        "strong-Wolfe line search ('lbfgs_wolfe'); --optimizer lbfgs gives the fixed step.",
    )
    return _split("paper", values, differences)


GATYS_OPTIONS = {
    "optimizer": ("lbfgs", f"{NOTEBOOK} In [9]: optim.LBFGS"),
    "pooling": ("max", f"{NOTEBOOK} In [5]: vgg = VGG() (pool='max', In [2])"),
    "lbfgs_history": (100, TORCH_LBFGS),
    "steps": (500, f"{NOTEBOOK} In [9]: max_iter = 500 (closure evaluations)"),
    "size": (512, f"{NOTEBOOK} In [4]: img_size = 512"),
    "multiscale": (
        ((512, 500), (800, 200)),
        f"{NOTEBOOK} In [10]: img_size_hr = 800, In [11]: max_iter_hr = 200",
    ),
}


def gatys(
    shape: tuple[int, int],
    channels: Mapping[str, int] = CHANNELS,
    content_layers: Layers = None,
    style_layers: Layers = None,
) -> Preset:
    """Gatys' PyTorch notebook: ``MSE(F, P)`` at r42 + ``sum_l 1e3/n_l^2 MSE(F F^T/(h w), A)``.

    Its Gram ``F^T F / (h w)`` is ``C`` times nstjax's, so its MSE is ``C^2`` times nstjax's
    style layer loss: the per-layer weight ``(1/n_l^2) * C_l^2`` with the notebook's
    ``n_l = 64, 128, 256, 512, 512`` (VGG-19's widths, for any layer chosen) is 1 on VGG-19's own
    channel counts. Each named layer gets the full weight (the notebook sums, never averages).
    """
    del shape  # means only: nothing depends on the size
    content = _chosen(content_layers, (CONTENT_LAYER,), _each)
    style = {
        layer: weight * channels[layer] ** 2 / CHANNELS[layer] ** 2
        for layer, weight in _chosen(style_layers, STYLE_LAYERS, _each).items()
    }
    values = {
        "content_weight": (1.0, f"{NOTEBOOK} In [8]: content_weights = [1e0]"),
        "style_weight": (1e3, f"{NOTEBOOK} In [8]: style_weights = [1e3/n**2 ...]"),
        "tv_weight": (0.0, f"{NOTEBOOK} In [9]: the loss has no TV term"),
        "content_layers": (content, f"{NOTEBOOK} In [8]: content_layers = ['r42']"),
        "style_layers": (style, f"{NOTEBOOK} In [3] (Gram / (h*w), MSE), In [8] (1/n**2)"),
        "init": ("content", f"{NOTEBOOK} In [6]: opt_img = content_image.data.clone()"),
        "noise_scale": (1.0, f"{NOTEBOOK} In [6]: the commented randn init (std 1)"),
        "learning_rate": (1.0, f"{NOTEBOOK} In [9]: optim.LBFGS([opt_img]), {TORCH_LBFGS}"),
        **GATYS_OPTIONS,
    }
    differences = (
        "The notebook resizes the shorter side to img_size (transforms.Scale); nstjax's size is "
        "the longer side.",
        "torch's LBFGS.step re-evaluates once per 20 iterations, so 500 closure calls are about "
        "476 iterations; nstjax counts iterations.",
        "The high-resolution pass starts from the 8-bit low-resolution result in the notebook; "
        "nstjax upsamples the float image.",
    )
    return _split("gatys", values, differences)


NEURAL_STYLE_OPTIONS = {
    "optimizer": ("lbfgs", f"{NEURAL_STYLE} line 29 (-optimizer lbfgs); lines 223-229"),
    "pooling": ("max", f"{NEURAL_STYLE} line 41 (-pooling max)"),
    "lbfgs_history": (
        100,
        f"{NEURAL_STYLE} line 31 (0: keep optim's default), {TORCH_OPTIM} line 44",
    ),
    "steps": (1000, f"{NEURAL_STYLE} line 25 (-num_iterations 1000), tolX = tolFun = -1 (227-228)"),
    "size": (512, f"{NEURAL_STYLE} line 17 (-image_size 512, the longer side)"),
    "multiscale": (None, f"{NEURAL_STYLE}: one scale"),
}


def neural_style(
    shape: tuple[int, int],
    channels: Mapping[str, int] = CHANNELS,
    content_layers: Layers = None,
    style_layers: Layers = None,
) -> Preset:
    """jcjohnson/neural-style's defaults: ``5 MSE(F, P) + sum_l 100 MSE(G, A)`` (Gram ÷ C H W),
    plus the TV term whose gradient its ``TVLoss`` computes, ``1e-3 * 1/2 sum (dx^2 + dy^2)``.

    nstjax's ``tv_loss`` is that sum divided by ``H W``, hence ``tv_weight = 1e-3 * H W / 2``.
    Each named layer gets the full weight (lines 135, 143: one loss module per layer).
    """
    del channels  # neural-style's normalisation is nstjax's: no channel constants
    height, width = shape
    ns = NEURAL_STYLE
    values = {
        "content_weight": (5.0, f"{ns} line 22 (-content_weight 5e0); lines 458, 464 (MSE)"),
        "style_weight": (100.0, f"{ns} line 23 (-style_weight 1e2); lines 529-544 (MSE, Gram/N)"),
        "tv_weight": (
            1e-3 * height * width / 2.0,
            f"{ns} line 24 (-tv_weight 1e-3); lines 582-596 (gradient of 1/2 sum of squares)",
        ),
        "content_layers": (
            _chosen(content_layers, (CONTENT_LAYER,), _each),
            f"{ns} line 48 (relu4_2), line 135 (the full weight on each layer)",
        ),
        "style_layers": (
            _chosen(style_layers, STYLE_LAYERS, _each),
            f"{ns} line 49 (relu1_1 ... relu5_1), line 143 (the full weight on each layer)",
        ),
        "init": ("noise", f"{ns} line 27 (-init random), lines 202-203"),
        "noise_scale": (0.001, f"{ns} line 203: torch.randn(...):mul(0.001)"),
        "learning_rate": (1.0, f"{TORCH_OPTIM} line 47 (line 30's 1e1 is Adam's, line 235)"),
        **NEURAL_STYLE_OPTIONS,
    }
    differences = (
        "neural-style feeds VGG x256 - mean (preprocess, line 422); nstjax x255 (as Caffe, "
        "neural-style-pt and Gatys' code).",
        "Its TVLoss leaves out the last row's horizontal and the last column's vertical "
        "differences (lines 585-590); nstjax's tv_loss includes them.",
        "neural-style-pt's TV (neural_style.py lines 477-487) is an L1 sum, which nstjax does not "
        "have; this preset follows the Lua original's squared TV.",
    )
    return _split("neural-style", values, differences)


NSTJAX_OPTIONS = {
    **{
        k: (getattr(Options, k), "nstjax.run.Options")
        for k in OPTION_NAMES[:3] + ("lbfgs_history",)
    },
    "size": (DEFAULT_SIZE, "nstjax.run.DEFAULT_SIZE"),
    "multiscale": (None, "nstjax stylize: one scale unless --multiscale"),
}
"""nstjax's static options: :class:`nstjax.run.Options`' defaults (the one source of them)."""


def nstjax(
    shape: tuple[int, int],
    channels: Mapping[str, int] = CHANNELS,
    content_layers: Layers = None,
    style_layers: Layers = None,
) -> Preset:
    """nstjax's own defaults, read from :class:`nstjax.Run` and :class:`nstjax.Options` (the one
    source of them, :mod:`nstjax.run`); named layers share weight 1."""
    del shape, channels
    run, where = Run(), "nstjax.run.Run"
    values = {k: (getattr(run, k), where) for k in RUN_FIELDS}
    for key, chosen in (("content_layers", content_layers), ("style_layers", style_layers)):
        values[key] = (_chosen(chosen, getattr(run, key), _equal), where)
    return _split("nstjax", {**values, **NSTJAX_OPTIONS}, ())


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


RUN_FIELDS = (
    "content_weight",
    "style_weight",
    "tv_weight",
    "content_layers",
    "style_layers",
    "learning_rate",
    "init",
    "noise_scale",
)
"""The :class:`nstjax.Run` fields a preset sets."""
