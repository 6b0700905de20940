"""Presets: the objectives and settings of the reference implementations, in nstjax's terms.

nstjax's losses are means (:mod:`nstjax.losses`): ``content_loss = mean((F - P)^2)``, each style
layer ``mean((G - A)^2)`` with ``G = F^T F / (h w C)``, ``tv_loss = (sum dy^2 + sum dx^2) / (H W)``.
A reference's formula is expressed *exactly* by the per-layer weights (and the three term
weights), so a preset is plain data: per-run values that a batch can mix. Constants that depend
on a layer's size (a sum is ``h w C`` times a mean) make some presets depend on the output shape,
hence ``preset_values(name, shape)``.

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
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from nstjax.architecture import CHANNELS, check_layer_names, downsampling
from nstjax.errors import NstjaxError
from nstjax.init import DEFAULT_NOISE_SCALE

PRESET_NAMES = ("paper", "gatys", "neural-style", "nstjax", "crowsonkb")
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

STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_LAYER = "conv4_2"

PAPER = (
    "Gatys, Ecker, Bethge, 'Image Style Transfer Using Convolutional Neural Networks', CVPR 2016"
)
NOTEBOOK = "leongatys/PytorchNeuralStyleTransfer@be6c8e2 NeuralStyleTransfer.ipynb"
SYNTHESIS = "leongatys/NeuralImageSynthesis@cced0b9 ExampleNotebooks/BasicStyleTransfer.ipynb"
NEURAL_STYLE = "jcjohnson/neural-style@07c4b82 neural_style.lua"
TORCH_OPTIM = "torch/optim@a5ceed7 lbfgs.lua"
TORCH_LBFGS = "torch.optim.LBFGS defaults (history_size=100, lr=1, no line search)"


@dataclasses.dataclass(frozen=True)
class Preset:
    """A reference implementation's objective and settings.

    Attributes:
        name: one of :data:`PRESET_NAMES`.
        run: values of :class:`nstjax.api.Run` fields (weights, layer-weight mappings, learning
            rate, init, noise scale).
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


def feature_shape(
    layer: str, shape: tuple[int, int], channels: Mapping[str, int] = CHANNELS
) -> tuple[int, int, int]:
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
    eq = f"{PAPER}, section 2"
    values = {
        "content_weight": (1.0, f"{eq}, eq. 7 (alpha; only alpha/beta is given)"),
        "style_weight": (1.0 / alpha_over_beta, f"{eq}, eq. 7 and figure captions (alpha/beta)"),
        "tv_weight": (0.0, f"{eq}, eq. 7 (no TV term)"),
        "content_layers": (content, f"{eq}, eq. 1 (1/2 sum of squares) at conv4_2 (section 3)"),
        "style_layers": (style, f"{eq}, eqs. 4-5 (E_l = sum/(4 N^2 M^2), w_l = 1/5, section 3)"),
        "init": ("noise", f"{eq}: synthesis starts from white noise"),
        "noise_scale": (1.0, f"{SYNTHESIS} In [5]: randn on the preprocessed image"),
        "learning_rate": (1.0, f"{TORCH_OPTIM} line 47 (learningRate 1, no line search)"),
        "optimizer": ("lbfgs_wolfe", f"{eq}: L-BFGS (no step rule); see the differences"),
        "pooling": ("avg", f"{eq}: max pooling replaced by average pooling"),
        "lbfgs_history": (100, f"{TORCH_OPTIM} line 44 (nCorrection 100)"),
        "steps": (500, f"{SYNTHESIS} In [3]: max_iter = 500 (the paper gives none)"),
        "size": (512, f"{eq}: results at about 512 x 512; {SYNTHESIS} In [3]: img_size = 512"),
        "multiscale": (None, f"{eq}: one scale"),
        "average_decay": (0.0, f"{eq}: the last iterate"),
        "style_loss": ("gram", f"{eq}, eqs. 3-5 (Gram matrices)"),
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
        "optimizer": ("lbfgs", f"{NOTEBOOK} In [9]: optim.LBFGS"),
        "pooling": ("max", f"{NOTEBOOK} In [5]: vgg = VGG() (pool='max', In [2])"),
        "lbfgs_history": (100, TORCH_LBFGS),
        "steps": (500, f"{NOTEBOOK} In [9]: max_iter = 500 (closure evaluations)"),
        "size": (512, f"{NOTEBOOK} In [4]: img_size = 512"),
        "multiscale": (
            ((512, 500), (800, 200)),
            f"{NOTEBOOK} In [10]: img_size_hr = 800, In [11]: max_iter_hr = 200",
        ),
        "average_decay": (0.0, f"{NOTEBOOK} In [9]: the last iterate"),
        "style_loss": ("gram", f"{NOTEBOOK} In [3]: GramMatrix, GramMSELoss"),
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
        "optimizer": ("lbfgs", f"{ns} line 29 (-optimizer lbfgs); lines 223-229"),
        "pooling": ("max", f"{ns} line 41 (-pooling max)"),
        "lbfgs_history": (100, f"{ns} line 31 (0: keep optim's default), {TORCH_OPTIM} line 44"),
        "steps": (1000, f"{ns} line 25 (-num_iterations 1000), tolX = tolFun = -1 (227-228)"),
        "size": (512, f"{ns} line 17 (-image_size 512, the longer side)"),
        "multiscale": (None, f"{ns}: one scale"),
        "average_decay": (0.0, f"{ns}: the last iterate"),
        "style_loss": ("gram", f"{ns} lines 529-544 (Gram)"),
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


def nstjax(
    shape: tuple[int, int],
    channels: Mapping[str, int] = CHANNELS,
    content_layers: Layers = None,
    style_layers: Layers = None,
) -> Preset:
    """nstjax's own defaults, read from :class:`nstjax.Run` and :class:`nstjax.Options` (the one
    source of them, :mod:`nstjax.run`); named layers share weight 1."""
    del shape, channels
    from nstjax import run as defaults

    run, options = defaults.Run(), defaults.Options()
    where = "nstjax.run.Run"
    values = {k: (getattr(run, k), where) for k in RUN_FIELDS}
    for key, chosen in (("content_layers", content_layers), ("style_layers", style_layers)):
        values[key] = (_chosen(chosen, getattr(run, key), _equal), where)
    for k in ("optimizer", "pooling", "steps", "lbfgs_history", "average_decay"):
        values[k] = (getattr(options, k), "nstjax.run.Options")
    values["size"] = (defaults.DEFAULT_SIZE, "nstjax.run.DEFAULT_SIZE")
    values["multiscale"] = (None, "nstjax stylize: one scale unless --multiscale")
    return _split("nstjax", values, ())


CROWSONKB = "crowsonkb/style-transfer-pytorch@e7e2c71 style_transfer/style_transfer.py"
CROWSONKB_CLI = "crowsonkb/style-transfer-pytorch@e7e2c71 style_transfer/cli.py"
CROWSONKB_LAYER_WEIGHTS = {"conv1_1": 256, "conv2_1": 64, "conv3_1": 16, "conv4_1": 4, "conv5_1": 1}
"""Its style layers (torchvision indices 1, 6, 11, 20, 29: relu1_1 ... relu5_1) and weights."""
CROWSONKB_SCALES = ((128, 1000), (181, 500), (256, 500), (362, 500), (512, 500))
"""``gen_scales(128, 512)`` (sizes ``round(512 / 2^(i/2))`` down to 128), 1000 iterations at the
first scale and 500 at each other."""


def crowsonkb(
    shape: tuple[int, int],
    channels: Mapping[str, int] = CHANNELS,
    content_layers: Layers = None,
    style_layers: Layers = None,
) -> Preset:
    """crowsonkb/style-transfer-pytorch's defaults: ``0.015 MSE(F, P)`` at relu4_2 +
    ``sum_l w_l W2_l`` (Gaussian W2, nstjax's ``gaussian_w2``: the mean over channels of the
    squared mean difference plus the covariance trace term over ``C``) with ``w_l`` 256, 64, 16,
    4, 1 normalised to sum 1 + ``2 TV``, Adam at 0.02 on [0, 1] pixels over scales growing by
    sqrt(2) from 128 to 512, each scale's output the moving average of its iterates (decay 0.99).

    Its TV (a nine-point stencil on [0, 1] pixels, lines 184-195) equals ``mean(dx^2 + dy^2)``
    on smooth images (a mean over pixels *and* channels), nstjax's ``tv_loss`` (a sum over
    channels) on 0-255 pixels divided by ``3 * 255^2``: ``tv_weight = 2 / (3 * 255^2)``. Named layers share the weight (its weights are normalised to sum 1).
    """
    del shape, channels  # means only: nothing depends on the size
    src, cli = CROWSONKB, CROWSONKB_CLI
    total = sum(CROWSONKB_LAYER_WEIGHTS.values())
    default_style = {n: w / total for n, w in CROWSONKB_LAYER_WEIGHTS.items()}
    values = {
        "content_weight": (0.015, f"{src} line 351 (content_weight 0.015), 366, 119-126 (MSE)"),
        "style_weight": (1.0, f"{src} lines 451-453 (each layer scaled by its weight only)"),
        "tv_weight": (2.0 / (3 * 255.0**2), f"{src} line 352 (tv_weight 2.), 184-195, 376"),
        "content_layers": (
            _chosen(content_layers, (CONTENT_LAYER,), _equal),
            f"{src} line 316 (layer 22, relu4_2), line 366 (weight / number of layers)",
        ),
        "style_layers": (
            _chosen(style_layers, default_style, _equal),
            f"{src} lines 317 (layers 1, 6, 11, 20, 29), 320-322 (256, 64, 16, 4, 1 / 341)",
        ),
        "style_loss": ("gaussian_w2", f"{src} lines 149-181 (StyleLossW2), 443, 453"),
        "init": ("content", f"{src} line 360 (init 'content'), 381-382"),
        "noise_scale": (DEFAULT_NOISE_SCALE, "unused: init is the content image"),
        "learning_rate": (0.02 * 255.0, f"{src} line 358 (step_size 0.02 on [0, 1] pixels)"),
        "optimizer": ("adam", f"{src} line 353 (optimizer 'adam'), 457-458"),
        "pooling": ("max", f"{src} line 310 (pooling 'max'); {cli} line 193"),
        "lbfgs_history": (10, f"{src} line 465 (its L-BFGS option: history_size 10)"),
        "steps": (500, f"{src} line 356 (iterations 500 per scale)"),
        "size": (512, f"{src} line 355 (end_scale 512); {cli} line 174"),
        "multiscale": (
            CROWSONKB_SCALES,
            f"{src} lines 268-276 (gen_scales), 354-357 (min_scale 128, initial_iterations "
            "1000), 378, 412, 478",
        ),
        "average_decay": (
            0.99,
            f"{src} line 359 (avg_decay 0.99), 237-253 (EMA), 421, 486, 497, 336",
        ),
    }
    return _split("crowsonkb", values, CROWSONKB_DIFFERENCES)


CROWSONKB_DIFFERENCES = (
    "Its VGG-19 is torchvision's (other weights, fed ImageNet-normalised [0, 1] images, "
    "conv1_1 with replicate padding: lines 30-39); nstjax has the Caffe weights. Content and "
    "style terms are both quadratic in the features, so their balance carries over, but the "
    "features' scale differs, so the TV term's weight relative to them does not.",
    "Adam's betas are (0.9, 0.99) there (line 458); nstjax's Adam has b2 = 0.999.",
    "It warm-starts Adam at each new scale from the previous scale's moments, resized "
    "(scale_adam, lines 285-295, 459-462); nstjax starts each scale's optimiser afresh.",
    "It clamps the iterate to [0, 1] after each step (lines 483-485); nstjax clips only the "
    "images it returns.",
    "Its matrix square roots are 12 Newton-Schulz iterations with eps 1e-4 added to both "
    "covariances' diagonals (lines 152-160); nstjax's gaussian_w2 uses eigh and no eps.",
    "Its TV is a nine-point stencil with replicate padding (lines 184-195); nstjax's tv_loss "
    "takes the horizontal and vertical differences only (equal on smooth images).",
    "It never enlarges the style image (size_to_fit, line 434); nstjax resizes it to "
    "style_scale times each scale's size.",
)


_PRESETS = {
    "paper": paper,
    "gatys": gatys,
    "neural-style": neural_style,
    "nstjax": nstjax,
    "crowsonkb": crowsonkb,
}


def check_preset_name(name: str) -> str:
    """Returns ``name`` or raises NstjaxError listing the valid ones."""
    if name not in _PRESETS:
        raise NstjaxError(
            f"preset {name!r} is unknown; valid presets are {', '.join(PRESET_NAMES)}"
        )
    return name


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
        shape: the output's ``(height, width)``: the paper's content weight and neural-style's TV
            weight are sums, which depend on it.
        channels: channel count per layer (VGG-19's by default; tests pass a tiny network's).
        content_layers, style_layers: the layers to use instead of the preset's (names, or a
            mapping whose weights multiply the preset's per-layer constants); the constants of
            the reference's formula follow the layers chosen.
        **kwargs: preset-specific options, e.g. ``alpha_over_beta`` for ``"paper"``.

    Returns:
        A :class:`Preset`.

    Raises:
        NstjaxError: an unknown name or an option the preset does not take.
    """
    build = _PRESETS[check_preset_name(name)]
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
    "style_loss",
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


def shape_dependent(name: str, **kwargs) -> bool:
    """Whether the preset's weights depend on the output's shape (it has sums, not means)."""
    return (
        preset_values(name, (64, 64), **kwargs).run != preset_values(name, (128, 96), **kwargs).run
    )


def resolve(
    name: str,
    shape: tuple[int, int],
    explicit: Mapping[str, Any],
    channels: Mapping[str, int] = CHANNELS,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A preset's run fields and options with the values a user gave explicitly on top.

    Rules: an explicit value replaces the preset's; explicit layers keep the preset's formula
    (its per-layer constants follow them); an explicit optimizer other than the preset's, without
    an explicit learning rate, takes that optimiser's default step (``learning_rate=None``);
    explicit ``size`` or ``steps`` replace the preset's multiscale schedule.

    Args:
        name: one of :data:`PRESET_NAMES`.
        shape: the output's ``(height, width)``.
        explicit: values of :data:`RUN_FIELDS` and :data:`OPTION_NAMES` the user set (``None``
            values count as not set); ``multiscale`` as ``((size, steps), ...)``.
        channels: channel count per layer.

    Returns:
        ``(run_fields, options)``: values for :class:`nstjax.Run` and the static options.

    Raises:
        NstjaxError: an unknown preset, or conflicting options (one line each): ``multiscale``
            with ``size``/``steps``; a size-dependent preset with a multiscale schedule;
            ``noise_scale`` with an init other than ``"noise"``.
    """
    given = {k: v for k, v in explicit.items() if v is not None}
    unknown = sorted(set(given) - set(RUN_FIELDS) - set(OPTION_NAMES))
    if unknown:
        raise ValueError(f"not preset fields: {unknown}")
    layers = {k: given.get(k) for k in ("content_layers", "style_layers")}
    preset = preset_values(name, shape, channels, **layers)
    run = {**preset.run, **{k: v for k, v in given.items() if k in RUN_FIELDS and k not in layers}}
    options = {**preset.options, **{k: v for k, v in given.items() if k in OPTION_NAMES}}
    changed_optimizer = given.get("optimizer", preset.options["optimizer"])
    if changed_optimizer != preset.options["optimizer"] and "learning_rate" not in given:
        run["learning_rate"] = None  # the preset's step belongs to its own optimiser
    scale_given = [k for k in ("size", "steps") if k in given]
    if "multiscale" in given and scale_given:
        raise NstjaxError(
            f"--multiscale replaces --{' and --'.join(scale_given)}; give one or the other"
        )
    if scale_given:
        options["multiscale"] = None
    if options["multiscale"] and shape_dependent(name, **layers):
        raise NstjaxError(
            f"--preset {name}: its weights depend on the output size (sums, not means), so it "
            "cannot run a --multiscale schedule; use --size"
        )
    init = run["init"]
    if "noise_scale" in given and not (isinstance(init, str) and init == "noise"):
        shown = repr(init) if isinstance(init, str) else "an image"
        raise NstjaxError(f"--noise-scale applies to --init noise only, and init is {shown}")
    return run, options


class Made(NamedTuple):
    """What :func:`make` returns: a run, the static options, and the output size or schedule."""

    run: Any  # nstjax.Run
    options: Any  # nstjax.Options
    size: int
    schedule: tuple[tuple[int, int], ...] | None


def make(name: str, shape: tuple[int, int], **settings) -> Made:
    """A :class:`nstjax.Run` and :class:`nstjax.Options` from a preset, ``settings`` on top.

    Args:
        name: one of :data:`PRESET_NAMES`.
        shape: the output's ``(height, width)`` (the preset's sums depend on it).
        **settings: fields of :class:`nstjax.Run` and :class:`nstjax.Options`, ``size`` and
            ``multiscale``; those a preset sets override it (:func:`resolve`'s rules).

    Returns:
        A :class:`Made`.

    Raises:
        NstjaxError: an unknown preset or setting, or conflicting settings.
    """
    from nstjax.run import Options, Run

    run_names = {f.name for f in dataclasses.fields(Run)}
    option_names = {f.name for f in dataclasses.fields(Options)}
    unknown = sorted(set(settings) - run_names - option_names - set(OPTION_NAMES))
    if unknown:
        raise NstjaxError(f"unknown setting(s) {', '.join(unknown)} for preset {name!r}")
    governed = set(RUN_FIELDS) | set(OPTION_NAMES)
    run_fields, options = resolve(name, shape, {k: settings[k] for k in governed & set(settings)})
    rest = {k: v for k, v in settings.items() if k not in governed}
    run = Run(**{k: v for k, v in rest.items() if k in run_names}, **run_fields)
    static_names = ("steps", "optimizer", "pooling", "lbfgs_history", "average_decay")
    static = {k: options[k] for k in static_names}
    opts = Options(**{k: v for k, v in rest.items() if k in option_names}, **static)
    schedule = options["multiscale"]
    return Made(run, opts, options["size"], tuple(schedule) if schedule else None)
