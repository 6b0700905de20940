"""Every content image with every style image, one run per pair, with the package's defaults.

    nstjax sweep --config configs/pairs.py --workdir runs/pairs
    nstjax sweep --config configs/pairs.py --workdir runs/mine \
        --config.data.content=photos/ --config.data.style=paintings/
    nstjax sweep --config configs/pairs.py:quick --workdir /tmp/pairs   # CI-sized

By default it pairs the example photo with both example paintings that ship with nstjax
(``nstjax/examples``). ``data.content`` and ``data.style`` take files and folders (a folder stands
for its images, by name). The pairs are a product (``data.pairing = "zip"`` pairs them in order instead); pairs of
one output shape run as one compiled batch. The contact sheet has contents down and styles across.
"""

from nstjax import examples
from nstjax.sweep import default_config


def get_config(arg=None):
    config = default_config()
    config.data.content = [str(examples.CONTENT)]
    config.data.style = [str(path) for path in examples.STYLES]
    config.data.pairing = "product"
    config.data.size = 512
    config.optim.steps = 500
    config.sweep.contact_sheet.rows = "content"
    config.sweep.contact_sheet.cols = "style"

    if arg == "quick":
        config.data.size = 32
        config.optim.steps = 6
        config.sweep.chunk = 3
        config.sweep.contact_sheet.cell = 64
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (variants: quick)")
    return config
