"""Memory: an estimate of one run's device footprint, and what a device has.

The estimate counts the activations VGG keeps for the backward pass up to the deepest layer, and
the image-sized buffers of the optimiser; the planner divides a device's memory by it to size
batches, and refuses sizes that cannot fit at all.
"""

import os

from nstjax.architecture import CHANNELS, LAYER_INDEX, LAYER_NAMES, downsampling
from nstjax.optim import LBFGS_HISTORY

ACTIVATION_FACTOR = 3.0
"""On CPU: bytes kept per activation element in the backward pass, in units of the activation's
own size (the convolution's output, the ReLU's output and a gradient buffer). Calibrated against
the measured 0.85 GB per 512x512 fp32 image (docs/performance.md): the estimate is 0.92 GB."""

ACCELERATOR_BYTES_PER_ELEMENT = {"float32": 4.8, "bfloat16": 3.15}
"""On GPUs and TPUs (no remat): bytes per activation element, fitted to XLA's memory analysis of
the real step compiled for an H100 (docs/benchmarks/compiled/h100.json; within 2% at 512, 1024
and 2048 px). XLA:GPU fuses the ReLU into the convolution and frees more eagerly than XLA:CPU, so
the CPU's factor over-estimates it 2.5x."""

ACCELERATOR_REMAT_FACTOR = {"float32": 2.3, "bfloat16": 2.8}
"""On GPUs and TPUs with remat: :data:`ACTIVATION_FACTOR`'s role for the one block recomputed at
a time, fitted as above."""

BUDGET_FRACTION = 0.7
"""Share of a device's memory a batch may plan to use (the rest: parameters, XLA's scratch)."""


def run_bytes(
    shape: tuple[int, int],
    deepest: str,
    *,
    dtype: str = "float32",
    optimizer: str = "adam",
    lbfgs_history: int = LBFGS_HISTORY,
    remat: bool = False,
    platform: str = "cpu",
) -> int:
    """Estimated device memory of one run in a batch, in bytes.

    The activations of every VGG layer up to ``deepest`` (``h w C`` elements each, at the
    layer's resolution), times :data:`ACTIVATION_FACTOR`; with ``remat`` only each block's input
    is kept plus one block's worth recomputed at a time. Plus the image-sized buffers: the
    pixels, their gradient, and the optimiser's state (Adam: 2 moments; L-BFGS: 2 per history
    pair).

    Args:
        shape: output ``(height, width)``.
        deepest: the deepest layer computed.
        dtype: activation dtype.
        optimizer: ``"adam"`` or ``"lbfgs"``.
        lbfgs_history: L-BFGS's history length.
        remat: whether blocks are rematerialised.
        platform: ``"cpu"``, or an accelerator's (``"gpu"``, ``"cuda"``, ``"tpu"``), whose
            compiler keeps fewer buffers (:data:`ACCELERATOR_BYTES_PER_ELEMENT`).

    Returns:
        Bytes.
    """
    itemsize = 2 if dtype == "bfloat16" else 4
    height, width = shape
    blocks: dict[int, list[int]] = {}  # downsampling factor -> elements of each layer
    for name in LAYER_NAMES[: LAYER_INDEX[deepest] + 1]:
        f = downsampling(name)
        blocks.setdefault(f, []).append((height // f) * (width // f) * CHANNELS[name])
    if remat:  # each block's input kept, one block's activations live at a time
        inputs = height * width * 3 + sum(
            (height // f) * (width // f) * CHANNELS[f"conv{f.bit_length() - 1}_1"]
            for f in blocks
            if f > 1
        )
        factor = ACTIVATION_FACTOR if platform == "cpu" else ACCELERATOR_REMAT_FACTOR[dtype]
        activations = (inputs + factor * max(map(sum, blocks.values()))) * itemsize
    elif platform == "cpu":
        activations = ACTIVATION_FACTOR * sum(map(sum, blocks.values())) * itemsize
    else:
        activations = ACCELERATOR_BYTES_PER_ELEMENT[dtype] * sum(map(sum, blocks.values()))
    slots = 2 + (2 * lbfgs_history + 2 if optimizer.startswith("lbfgs") else 2)
    return int(activations + slots * height * width * 3 * 4)


def device_memory_bytes(device=None) -> int:
    """Memory of one device: the accelerator's limit, or on CPU the host's RAM over its devices."""
    import jax

    device = device or jax.local_devices()[0]
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # some backends do not implement it
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"])
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return ram // max(1, jax.local_device_count())


IMAGE_COPIES = 4
"""float32 copies of an image that loading and resizing hold at once (the decoded image, the
resized one and the resampler's per-channel buffers)."""


def image_bytes(shape: tuple[int, int]) -> int:
    """Host memory that loading an image at ``shape`` ``(height, width)`` needs, about."""
    return IMAGE_COPIES * shape[0] * shape[1] * 3 * 4


def host_memory_bytes() -> int:
    """The host's RAM."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
