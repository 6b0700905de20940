"""Gatys et al. 2016's content reconstructions (figure 1, bottom row), with the paper's formulas.

    nstjax sweep --config configs/paper_content_reconstructions.py --workdir runs/content_rec
    nstjax sweep --config configs/paper_content_reconstructions.py:quick --workdir /tmp/cr  # CI

Five runs, one per content layer conv1_2 ... conv5_2, each minimising only the content loss
(style weight 0) from white noise as the paper's code draws it (the network's mean colour plus
one grey level of Gaussian noise: ``init="noise"``, nstjax.init). ``preset="paper"`` supplies
the rest: the paper's ``1/2 sum (F - P)^2`` (its per-layer constant follows each run's layer),
L-BFGS (strong-Wolfe line search) with history 100, average pooling. The paper: conv1_2 ...
conv3_2 almost perfect, conv4_2 and conv5_2 keep the arrangement and lose the detail
(``python scripts/sweep_psnr.py WORKDIR`` prints each run's PSNR against the photo). One run
from the command line:

    nstjax stylize --preset paper --style-weight 0 --content-layers conv2_2 --size 128 ...
"""

from nstjax import examples
from nstjax.sweep import default_config

LAYERS = ["conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2"]


def get_config(arg=None):
    config = default_config()
    config.preset = "paper"
    config.data.content = [str(examples.path("chelsea.jpg"))]
    config.data.style = [str(examples.path("starry_night.jpg"))]  # unused: style weight 0
    config.data.size = 128
    config.loss.style_weight = 0.0
    config.loss.style_layers = ["conv1_1"]  # weight 0; the shallowest keeps the program small
    config.optim.steps = 400
    config.seed = 0
    config.sweep.axes.content_layers = [[layer] for layer in LAYERS]
    config.sweep.contact_sheet.cols = "content_layers"
    if arg == "quick":
        config.data.size = 32
        config.optim.steps = 10
        config.sweep.chunk = 5
        config.sweep.contact_sheet.cell = 64
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (variants: quick)")
    return config
