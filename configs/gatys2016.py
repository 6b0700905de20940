"""Gatys, Ecker, Bethge, "Image Style Transfer Using CNNs" (CVPR 2016): the paper's settings.

    nstjax sweep --config configs/gatys2016.py --workdir runs/gatys2016
    nstjax sweep --config configs/gatys2016.py:quick --workdir /tmp/gatys2016   # CI-sized

One run: the example photo in the style of The Starry Night (both ship with nstjax; the paper's
photo is the Neckarfront in Tübingen: ``--config.data.content=PATH/tubingen.jpg``). As in the paper: content
layer conv4_2, style layers conv1_1 ... conv5_1 weighted 1/5 each, average pooling, L-BFGS from
white noise, no total-variation term, about 512 px.

The weights are in nstjax's normalisation (nstjax/losses.py: Grams divided by h w C, means
instead of sums), not the paper's, and the paper's VGG had its filters rescaled; so the paper's
alpha/beta = 1e-3 does not carry over as a number. ``CONTENT_STYLE_RATIO`` below is
``content_weight / style_weight`` in nstjax's units. Measured with configs/sweep_style_weight.py
(Tübingen x Composition VII, 128 px, 100 L-BFGS steps from noise): ratios up to 1e-3 give pure
style, 1e-2 strong style over the content's layout, 1e-1 a balanced result, 1 mostly content.
1e-2 is the closest to the paper's figures.
"""

from nstjax import examples
from nstjax.sweep import default_config

CONTENT_STYLE_RATIO = 1e-2


def get_config(arg=None):
    config = default_config()
    config.data.content = [str(examples.CONTENT)]  # the paper: tubingen.jpg
    config.data.style = [str(examples.STYLE)]  # the paper: starry_night.jpg
    config.data.size = 512

    config.loss.content_weight = 1.0
    config.loss.style_weight = config.loss.content_weight / CONTENT_STYLE_RATIO
    config.loss.tv_weight = 0.0
    config.loss.content_layers = ["conv4_2"]
    config.loss.style_layers = ["conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"]

    config.optim.optimizer = "lbfgs"
    config.optim.learning_rate = 1.0
    config.optim.steps = 500
    config.optim.lbfgs_history = 20
    config.model.pooling = "avg"
    config.init = "uniform"  # the noise these settings were measured with; "noise" is the paper's
    config.seed = 0
    config.sweep.chunk = 50

    if arg == "quick":
        config.data.size = 48
        config.optim.steps = 20
        config.sweep.chunk = 10
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (variants: quick)")
    return config
