"""The shape of VGG-19's convolutional part: layer names and channel counts.

Layers are named as Gatys et al. name them (``conv4_2`` is the rectified output of the second
convolution of the fourth block). A 2x2 pooling follows the last convolution of each block.
"""

BLOCKS: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512))
"""(number of convolutions, output channels) for each of the five blocks."""


def _layers() -> tuple[tuple[str, int, int], ...]:
    layers, cin = [], 3
    for block, (count, cout) in enumerate(BLOCKS, start=1):
        for i in range(1, count + 1):
            layers.append((f"conv{block}_{i}", cin, cout))
            cin = cout
    return tuple(layers)


LAYERS: tuple[tuple[str, int, int], ...] = _layers()
"""(name, input channels, output channels) for conv1_1 ... conv5_4, in order."""

LAYER_NAMES: tuple[str, ...] = tuple(name for name, _, _ in LAYERS)
LAYER_INDEX: dict[str, int] = {name: i for i, name in enumerate(LAYER_NAMES)}
CHANNELS: dict[str, int] = {name: cout for name, _, cout in LAYERS}

STYLE_LAYERS: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
"""Gatys et al.'s style layers: the first convolution of each block."""
CONTENT_LAYER = "conv4_2"
"""Gatys et al.'s content layer."""


def kernel_shape(name: str) -> tuple[int, int, int, int]:
    """HWIO kernel shape of a layer."""
    _, cin, cout = LAYERS[LAYER_INDEX[name]]
    return (3, 3, cin, cout)


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Flat ``"conv1_1/kernel"``-style keys to shapes, for strict checks of weight files."""
    shapes = {}
    for name, _, cout in LAYERS:
        shapes[f"{name}/kernel"] = kernel_shape(name)
        shapes[f"{name}/bias"] = (cout,)
    return shapes


def block_of(name: str) -> int:
    """Block number (1-5) of a layer name."""
    return int(name[4])


def downsampling(name: str) -> int:
    """Spatial downsampling factor of a layer's activation relative to the input (1, 2, ..., 16)."""
    return 2 ** (block_of(name) - 1)


def check_layer_names(names, option: str = "layers") -> tuple[str, ...]:
    """Returns the names as a tuple, or raises NstjaxError naming the bad ones and the valid set."""
    from nstjax.errors import NstjaxError

    names = tuple(names)
    bad = [n for n in names if n not in LAYER_INDEX]
    if bad:
        raise NstjaxError(
            f"{option}: unknown layer name(s) {', '.join(map(repr, bad))}; "
            f"valid names are {', '.join(LAYER_NAMES)}"
        )
    return names
