"""How a sweep's runs become compiled batches: groups by shape and program, batch sizes by memory.

Runs whose outputs have one shape and whose static fields (steps, optimiser, pooling, dtype, ...)
agree form a *group*; a group is cut into batches of one size (the last one padded), so each
group compiles once. The batch size is what fits the device's memory, from an estimate of one
run's footprint (the activations VGG keeps for the backward pass, plus the optimiser's state),
and a multiple of the number of devices the run axis is sharded over.
"""

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from nstjax.architecture import CHANNELS, LAYER_INDEX, LAYER_NAMES, downsampling
from nstjax.sweep.expand import SweepRun

GROUP_FIELDS = ("steps", "optimizer", "pooling", "lbfgs_history", "dtype", "remat")
"""Static fields: runs that differ in one of them (or in shape) are in different groups."""

ACTIVATION_FACTOR = 3.0
"""Bytes kept per activation element in the backward pass, in units of the activation's own
size: the convolution's output, the ReLU's output and a gradient buffer. Calibrated against the
measured 0.85 GB per 512x512 fp32 image (docs/performance.md): the estimate is 0.92 GB."""

BUDGET_FRACTION = 0.7
"""Share of a device's memory a batch may plan to use (the rest: parameters, XLA's scratch)."""


@dataclasses.dataclass
class Group:
    """Runs compiled together: one output shape, one set of static fields.

    Attributes:
        shape: output ``(height, width)``.
        static: the values of :data:`GROUP_FIELDS`.
        runs: the runs, in sweep order.
    """

    shape: tuple[int, int]
    static: dict[str, Any]
    runs: list[SweepRun]

    @property
    def name(self) -> str:
        """A short description, e.g. ``"48x64 adam 100 steps"``."""
        s = self.static
        return f"{self.shape[0]}x{self.shape[1]} {s['optimizer']} {s['steps']} steps"


def group_runs(
    runs: Sequence[SweepRun], shape_of: Callable[[SweepRun], tuple[int, int]]
) -> list[Group]:
    """Groups runs by output shape and static fields, in order of first appearance.

    Args:
        runs: the runs.
        shape_of: a run's output ``(height, width)``.

    Returns:
        The groups.
    """
    groups: dict[tuple, Group] = {}
    for run in runs:
        static = {name: run.values[name] for name in GROUP_FIELDS}
        shape = tuple(shape_of(run))
        key = (shape, tuple(static.values()))
        groups.setdefault(key, Group(shape, static, [])).runs.append(run)
    return list(groups.values())


def _layer_names(value) -> list[str]:
    if isinstance(value, str):
        return [n.strip() for n in value.split(",") if n.strip()]
    if isinstance(value, dict):
        return [n for n, w in value.items() if w > 0]
    return list(value)


def deepest_layer(runs: Sequence[SweepRun]) -> str:
    """The deepest layer any of ``runs`` uses (content or style)."""
    names = [
        n
        for r in runs
        for key in ("content_layers", "style_layers")
        for n in _layer_names(r.values[key])
    ]
    return max(names, key=LAYER_INDEX.__getitem__) if names else LAYER_NAMES[0]


def run_bytes(
    shape: tuple[int, int],
    deepest: str,
    *,
    dtype: str = "float32",
    optimizer: str = "adam",
    lbfgs_history: int = 20,
    remat: bool = False,
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
        activations = (inputs + ACTIVATION_FACTOR * max(map(sum, blocks.values()))) * itemsize
    else:
        activations = ACTIVATION_FACTOR * sum(map(sum, blocks.values())) * itemsize
    slots = 2 + (2 * lbfgs_history + 2 if optimizer == "lbfgs" else 2)
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


def batch_size(
    n_runs: int,
    per_run_bytes: int,
    budget_bytes: int,
    n_devices: int = 1,
    requested: int | None = None,
) -> int:
    """Runs per compiled batch: a multiple of ``n_devices``, no bigger than needed for ``n_runs``.

    Args:
        n_runs: runs to batch.
        per_run_bytes: one run's estimated memory (:func:`run_bytes`).
        budget_bytes: memory one device may use.
        n_devices: devices the run axis is sharded over.
        requested: a batch size asked for explicitly (rounded up to a multiple of ``n_devices``);
            overrides the memory estimate.

    Returns:
        The batch size (at least ``n_devices``).
    """
    needed = math.ceil(max(n_runs, 1) / n_devices) * n_devices
    if requested:
        size = math.ceil(requested / n_devices) * n_devices
    else:
        size = max(1, int(budget_bytes // max(per_run_bytes, 1))) * n_devices
    return min(size, needed)


def batches(runs: Sequence[SweepRun], size: int) -> list[list[SweepRun]]:
    """``runs`` cut into consecutive batches of ``size`` (the last may be shorter; the caller
    pads it so that it reuses the compiled program)."""
    return [list(runs[i : i + size]) for i in range(0, len(runs), size)]
