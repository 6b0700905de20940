"""The paper's grid: content/style ratio from 1e-5 to 1e-1 across growing sets of style layers.

    nstjax sweep --config configs/sweep_style_weight.py --workdir runs/style_weight
    nstjax sweep --config configs/sweep_style_weight.py:quick --workdir /tmp/grid   # CI-sized

Gatys et al. (CVPR 2016, the figure on the style representation) show the Tübingen photo in the
style of Kandinsky's Composition VII as a grid: one row per set of style layers (conv1_1;
conv1_1 and conv2_1; ... up to conv5_1), one column per ratio alpha/beta of the content and style
weights. This config is that grid as a product of two axes, 5 x 5 = 25 runs, all compiled once; by
default on the example photo and The Great Wave that ship with nstjax (the paper's images:
``--config.data.content=PATH/tubingen.jpg --config.data.style=PATH/composition_vii.jpg``).

The ratio axis is ``content_style_ratio``: each run gets ``style_weight = content_weight /
ratio``. The ratios are the paper's numbers, but in nstjax's normalisation (nstjax/losses.py:
Grams divided by h w C, means instead of sums; the paper also rescaled VGG's filters), which is
not the paper's: equal numbers do not give an equal balance. Measured here (128 px, 100 L-BFGS
steps from noise, all five style layers): ratios up to 1e-3 give pure style, 1e-2 strong style
over the content's layout, 1e-1 a balanced result, 1 mostly content. So in nstjax's units most
of the paper's range is style-dominated; to see the whole transition across the grid, use
``--config.sweep.axes.content_style_ratio="[1e-3, 1e-2, 1e-1, 1.0]"``.
"""

from nstjax import examples
from nstjax.sweep import default_config

RATIOS = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
STYLE_LAYERS = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]


def get_config(arg=None):
    config = default_config()
    config.data.content = [str(examples.CONTENT)]  # the paper: tubingen.jpg
    config.data.style = [str(examples.STYLES[1])]  # the paper: composition_vii.jpg
    config.data.size = 512

    config.loss.content_weight = 1.0
    config.loss.tv_weight = 0.0
    config.loss.content_layers = ["conv4_2"]
    config.optim.optimizer = "lbfgs"
    config.optim.learning_rate = 1.0
    config.optim.steps = 500
    config.model.pooling = "avg"
    config.init = "uniform"  # the noise these settings were measured with; "noise" is the paper's

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
