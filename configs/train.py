"""A feed-forward training config (Johnson et al.'s settings, nstjax's objective).

    nstjax train --config configs/train.py --content-dir photos/ --output models/starry
    nstjax train --config configs/train.py:quick --content-dir photos/ --output /tmp/model \
        --config.style_weight=[100.0]

It starts from every field's default (``nstjax.feedforward.config.default_config``: 256 px crops,
batch 4, Adam 1e-3, 40,000 steps) and names the style; ``content_dir`` is a folder of your photos
(MS-COCO in the paper), given with ``--content-dir`` or ``--config.content_dir=DIR``. Flags and
``--config.FIELD=VALUE`` override any field; a misspelt field is an error.
"""

from nstjax import examples
from nstjax.feedforward.config import default_config


def get_config(arg=None):
    config = default_config()
    config.styles = [str(examples.STYLE)]

    if arg == "quick":
        config.size = 32
        config.steps = 6
        config.batch_size = 2
        config.holdout = 1
        config.sample_every = 6
        config.save_every = 6
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (variants: quick)")
    return config
