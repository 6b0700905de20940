"""crowsonkb/style-transfer-pytorch's recipe as a preset."""

from collections.abc import Mapping

from nstjax.architecture import CHANNELS, CONTENT_LAYER
from nstjax.init import DEFAULT_NOISE_SCALE
from nstjax.presets.common import Layers, Preset, equal, layer_choice, split

CROWSONKB = "crowsonkb/style-transfer-pytorch@e7e2c71 style_transfer/style_transfer.py"
CROWSONKB_CLI = "crowsonkb/style-transfer-pytorch@e7e2c71 style_transfer/cli.py"
CROWSONKB_LAYER_WEIGHTS = {"conv1_1": 256, "conv2_1": 64, "conv3_1": 16, "conv4_1": 4, "conv5_1": 1}
"""Its style layers (torchvision indices 1, 6, 11, 20, 29: relu1_1 ... relu5_1) and weights."""
CROWSONKB_SCALES = ((128, 1000), (181, 500), (256, 500), (362, 500), (512, 500))
"""``gen_scales(128, 512)`` (sizes ``round(512 / 2^(i/2))`` down to 128), 1000 iterations at the
first scale and 500 at each other."""


CROWSONKB_OPTIONS = {
    "optimizer": ("adam", f"{CROWSONKB} line 353 (optimizer 'adam'), 457-458"),
    "pooling": ("max", f"{CROWSONKB} line 310 (pooling 'max'); {CROWSONKB_CLI} line 193"),
    "lbfgs_history": (10, f"{CROWSONKB} line 465 (its L-BFGS option: history_size 10)"),
    "steps": (500, f"{CROWSONKB} line 356 (iterations 500 per scale)"),
    "size": (512, f"{CROWSONKB} line 355 (end_scale 512); {CROWSONKB_CLI} line 174"),
    "multiscale": (
        CROWSONKB_SCALES,
        f"{CROWSONKB} lines 268-276 (gen_scales), 354-357 (min_scale 128, initial_iterations "
        "1000), 378, 412, 478",
    ),
    "average_decay": (
        0.99,
        f"{CROWSONKB} line 359 (avg_decay 0.99), 237-253 (EMA), 421, 486, 497, 336",
    ),
}
"""crowsonkb/style-transfer-pytorch's static options, each cited."""


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
    src = CROWSONKB
    total = sum(CROWSONKB_LAYER_WEIGHTS.values())
    default_style = {n: w / total for n, w in CROWSONKB_LAYER_WEIGHTS.items()}
    values = {
        "content_weight": (0.015, f"{src} line 351 (content_weight 0.015), 366, 119-126 (MSE)"),
        "style_weight": (1.0, f"{src} lines 451-453 (each layer scaled by its weight only)"),
        "tv_weight": (2.0 / (3 * 255.0**2), f"{src} line 352 (tv_weight 2.), 184-195, 376"),
        "content_layers": (
            layer_choice(content_layers, (CONTENT_LAYER,), equal),
            f"{src} line 316 (layer 22, relu4_2), line 366 (weight / number of layers)",
        ),
        "style_layers": (
            layer_choice(style_layers, default_style, equal),
            f"{src} lines 317 (layers 1, 6, 11, 20, 29), 320-322 (256, 64, 16, 4, 1 / 341)",
        ),
        "style_loss": ("gaussian_w2", f"{src} lines 149-181 (StyleLossW2), 443, 453"),
        "init": ("content", f"{src} line 360 (init 'content'), 381-382"),
        "noise_scale": (DEFAULT_NOISE_SCALE, "unused: init is the content image"),
        "learning_rate": (0.02 * 255.0, f"{src} line 358 (step_size 0.02 on [0, 1] pixels)"),
        **CROWSONKB_OPTIONS,
    }
    return split("crowsonkb", values, CROWSONKB_DIFFERENCES)


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
