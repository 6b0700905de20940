"""Gatys et al. 2016's style reconstructions (figure 1, top row), with the paper's formulas.

    nstjax sweep --config configs/paper_style_reconstructions.py --workdir runs/style_rec
    nstjax sweep --config configs/paper_style_reconstructions.py:quick --workdir /tmp/sr  # CI

Five runs from white noise (the mean colour plus one grey level of Gaussian noise), each
minimising only the style loss (content weight 0) on a growing subset of conv1_1 ... conv5_1.
``preset="paper"`` supplies ``E_l = 1/(4 N_l^2 M_l^2) sum (G - A)^2`` with ``w_l = 1/n`` on the
``n`` layers of each run, L-BFGS (strong-Wolfe line search, history 100) and average pooling.
The output has the style image's shape (the "content" is the painting itself, used only for its
size).
"""

from nstjax import examples
from nstjax.sweep import default_config

STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]


def get_config(arg=None):
    config = default_config()
    config.preset = "paper"
    config.data.content = [str(examples.path("starry_night.jpg"))]  # sets the output's shape only
    config.data.style = [str(examples.path("starry_night.jpg"))]
    config.data.size = 128
    config.loss.content_weight = 0.0
    config.loss.content_layers = ["conv1_1"]  # weight 0
    config.optim.steps = 300
    config.seed = 0
    config.sweep.axes.style_layers = [STYLE_LAYERS[: i + 1] for i in range(len(STYLE_LAYERS))]
    config.sweep.contact_sheet.cols = "style_layers"
    if arg == "quick":
        config.data.size = 32
        config.optim.steps = 10
        config.sweep.chunk = 5
        config.sweep.contact_sheet.cell = 64
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (variants: quick)")
    return config
