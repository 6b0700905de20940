"""Model FLOPs of one iteration: XLA's cost analysis of the compiled step, and a hand count.

An iteration is one forward pass to the deepest loss layer and the gradient with respect to the
image only (no weight gradients), so the convolutions cost about twice their forward multiply-adds
(``../shared/docs/performance.md``). :func:`hand_count` is that count written out independently of
XLA: 2 FLOP per multiply-add, ``2 h w C_in C_out 9`` per 3x3 convolution forward, the same again
for its input gradient, and ``4 h w C^2`` per Gram matrix (forward and backward). XLA's figure
also counts elementwise work (ReLU, pooling, the losses, the optimiser), so it sits a few percent
above the hand count; rematerialisation adds the recomputed forward passes on top.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from nstjax.architecture import BLOCKS, LAYER_INDEX, LAYERS, STYLE_LAYERS, block_of

PERFORMANCE_MD_GFLOP: Mapping[int, float] = {128: 24.8, 256: 99.2, 512: 397.0, 1024: 1588.0}
"""Total GFLOP per iteration of a square image (VGG-19 to conv5_1, default layers), as tabulated
in ``../shared/docs/performance.md``."""


def cost_analysis_flops(compiled: Any) -> float | None:
    """The ``"flops"`` entry of a compiled program's cost analysis, or None where there is none.

    Args:
        compiled: ``jax.jit(f).lower(...).compile()`` (or a lowered program).

    Returns:
        Total FLOPs of one call of the program (over the whole batch), or None if the backend
        reports no cost analysis.
    """
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # some backends raise instead of returning nothing
        return None
    if isinstance(analysis, Sequence) and not isinstance(analysis, Mapping):
        analysis = analysis[0] if analysis else None
    if not analysis or "flops" not in analysis:
        return None
    flops = float(analysis["flops"])
    return flops if flops > 0 else None


def conv_forward_flops(
    height: int,
    width: int,
    last_layer: str = "conv5_1",
    channels: Sequence[int] | None = None,
    input_channels: int = 3,
) -> float:
    """Forward FLOPs of VGG-19's 3x3 convolutions conv1_1 ... ``last_layer`` on one image.

    Args:
        height, width: input size; each block after the first halves it (floor, VALID pooling).
        last_layer: the deepest layer computed.
        channels: output channels of the five blocks (default VGG-19's).
        input_channels: channels of the image.
    """
    widths = tuple(c for _, c in BLOCKS) if channels is None else tuple(channels)
    stop = LAYER_INDEX[last_layer]
    total, cin = 0.0, input_channels
    for name, _, _ in LAYERS[: stop + 1]:
        block = block_of(name)
        cout = widths[block - 1]
        h, w = height >> (block - 1), width >> (block - 1)
        total += 2.0 * h * w * cin * cout * 9
        cin = cout
    return total


def gram_flops(
    height: int, width: int, layers: Iterable[str], channels: Sequence[int] | None = None
) -> float:
    """FLOPs of the Gram matrices at ``layers`` of one image, forward and backward (4 h w C^2)."""
    widths = tuple(c for _, c in BLOCKS) if channels is None else tuple(channels)
    total = 0.0
    for name in layers:
        block = block_of(name)
        c = widths[block - 1]
        total += 4.0 * (height >> (block - 1)) * (width >> (block - 1)) * c * c
    return total


def hand_count(
    height: int,
    width: int,
    style_layers: Iterable[str] = STYLE_LAYERS,
    last_layer: str | None = None,
    channels: Sequence[int] | None = None,
) -> float:
    """Model FLOPs of one iteration of one image: convolutions forward and input-gradient, and
    the Grams forward and backward (the count of ``../shared/docs/performance.md``).

    Args:
        height, width: image size.
        style_layers: layers with a Gram matrix.
        last_layer: the deepest layer computed (default: the deepest style layer, conv5_1 for
            the default layers).
        channels: output channels of the five blocks (default VGG-19's).
    """
    style_layers = tuple(style_layers)
    if last_layer is None:
        last_layer = max(style_layers, key=LAYER_INDEX.__getitem__)
    convs = conv_forward_flops(height, width, last_layer, channels)
    return 2.0 * convs + gram_flops(height, width, style_layers, channels)
