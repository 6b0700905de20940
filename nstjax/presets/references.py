"""The paper's preset and those of the two implementations by its authors' lineage: Gatys' PyTorch
notebook and jcjohnson/neural-style (the conversions are in :mod:`nstjax.presets`' docstring)."""

from collections.abc import Mapping

from nstjax.architecture import CHANNELS, CONTENT_LAYER, STYLE_LAYERS
from nstjax.presets.common import (
    NEURAL_STYLE,
    NOTEBOOK,
    PAPER_SECTION,
    SYNTHESIS,
    TORCH_LBFGS,
    TORCH_OPTIM,
    Layers,
    Preset,
    each,
    equal,
    feature_shape,
    layer_choice,
    split,
)

PAPER_OPTIONS = {
    "optimizer": ("lbfgs_wolfe", f"{PAPER_SECTION}: L-BFGS (no step rule); see the differences"),
    "pooling": ("avg", f"{PAPER_SECTION}: max pooling replaced by average pooling"),
    "lbfgs_history": (100, f"{TORCH_OPTIM} line 44 (nCorrection 100)"),
    "steps": (500, f"{SYNTHESIS} In [3]: max_iter = 500 (the paper gives none)"),
    "size": (512, f"{PAPER_SECTION}: about 512 x 512; {SYNTHESIS} In [3]: img_size = 512"),
    "multiscale": (None, f"{PAPER_SECTION}: one scale"),
    "average_decay": (0.0, f"{PAPER_SECTION}: the last iterate"),
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
    for layer, weight in layer_choice(content_layers, (CONTENT_LAYER,), equal).items():
        h, w, c = feature_shape(layer, shape, channels)
        content[layer] = weight * 0.5 * h * w * c  # 1/2 sum = 1/2 h w C mean
    # 1/(4 N^2 M^2) * M^2 N^2 * N^2 mean = N^2 / 4 mean, times w_l
    style = {
        layer: weight * channels[layer] ** 2 / 4.0
        for layer, weight in layer_choice(style_layers, STYLE_LAYERS, equal).items()
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
        "style_loss": ("gram", f"{eq}, eqs. 3-5 (Gram matrices)"),
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
    return split("paper", values, differences)


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
    "average_decay": (0.0, f"{NOTEBOOK} In [9]: the last iterate"),
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
    content = layer_choice(content_layers, (CONTENT_LAYER,), each)
    style = {
        layer: weight * channels[layer] ** 2 / CHANNELS[layer] ** 2
        for layer, weight in layer_choice(style_layers, STYLE_LAYERS, each).items()
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
        "style_loss": ("gram", f"{NOTEBOOK} In [3]: GramMatrix, GramMSELoss"),
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
    return split("gatys", values, differences)


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
    "average_decay": (0.0, f"{NEURAL_STYLE}: the last iterate"),
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
            layer_choice(content_layers, (CONTENT_LAYER,), each),
            f"{ns} line 48 (relu4_2), line 135 (the full weight on each layer)",
        ),
        "style_layers": (
            layer_choice(style_layers, STYLE_LAYERS, each),
            f"{ns} line 49 (relu1_1 ... relu5_1), line 143 (the full weight on each layer)",
        ),
        "init": ("noise", f"{ns} line 27 (-init random), lines 202-203"),
        "noise_scale": (0.001, f"{ns} line 203: torch.randn(...):mul(0.001)"),
        "learning_rate": (1.0, f"{TORCH_OPTIM} line 47 (line 30's 1e1 is Adam's, line 235)"),
        "style_loss": ("gram", f"{ns} lines 529-544 (Gram)"),
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
    return split("neural-style", values, differences)
