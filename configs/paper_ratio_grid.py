"""Gatys et al. 2016's alpha/beta grid in the paper's own numbers: 1e-5 ... 1e-1 with its formulas.

    nstjax sweep --config configs/paper_ratio_grid.py --workdir runs/paper_grid
    nstjax sweep --config configs/paper_ratio_grid.py:quick --workdir /tmp/grid   # CI-sized

Rows: style layers conv1_1; conv1_1 + conv2_1; ... up to conv5_1. Columns: alpha/beta =
1e-5 ... 1e-1 (``content_style_ratio``: style weight = content weight / ratio). With
``preset="paper"`` the losses are the paper's sums (``1/2 sum (F - P)^2``; ``E_l = 1/(4 N^2 M^2)
sum (G - A)^2``, ``w_l = 1/n``: per-layer constants that follow each run's layers and size), so
the ratios are the paper's numbers, unlike configs/sweep_style_weight.py (nstjax's means).
What still differs is the network: the paper's VGG-19 had each filter rescaled to mean
activation 1 over ImageNet; nstjax has the original weights (nstjax.presets.paper). The paper
starts from white noise; ``init="noise"`` is that noise (nstjax.init). The preset's L-BFGS has
the strong-Wolfe line search: the authors' fixed step diverges on these sums from noise
(docs/gallery.md). The content is the CC0 cat photo (the paper's Tübingen photo has no verified
licence); the README's figure is ``--config.data.size=64 --config.optim.steps=200``.
"""

from nstjax import examples
from nstjax.sweep import default_config

RATIOS = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]


def get_config(arg=None):
    config = default_config()
    config.preset = "paper"
    config.data.content = [str(examples.path("chelsea.jpg"))]  # CC0 (the paper: Tübingen)
    config.data.style = [str(examples.path("composition_vii.jpg"))]
    config.data.size = 256
    config.seed = 0
    config.sweep.axes.style_layers = [STYLE_LAYERS[: i + 1] for i in range(len(STYLE_LAYERS))]
    config.sweep.axes.content_style_ratio = RATIOS
    config.sweep.contact_sheet.rows = "style_layers"
    config.sweep.contact_sheet.cols = "content_style_ratio"
    if arg == "quick":
        config.data.size = 32
        config.optim.steps = 8
        config.sweep.chunk = 4
        config.sweep.contact_sheet.cell = 64
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (variants: quick)")
    return config
