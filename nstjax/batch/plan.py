"""The planner: runs grouped by everything static and by shape, cut into batches that fit.

Runs whose outputs have one shape and whose :class:`~nstjax.run.Options` agree form a *group*;
the group's compiled program covers every layer any of its runs weights, so all its batches share
one program. A group is cut into batches of one size (the last one padded by repeating its last
run), a multiple of the devices the run axis is sharded over, and no larger than what fits in a
device's memory (:mod:`nstjax.batch.memory`). Every entry point (the API, the CLI's progress
display, sweeps, the benchmark) plans through here.
"""

import dataclasses
import math
from collections.abc import Callable, Hashable, Sequence

import numpy as np

from nstjax import engine
from nstjax.architecture import LAYER_INDEX, LAYER_NAMES, downsampling
from nstjax.batch import memory
from nstjax.errors import NstjaxError
from nstjax.run import STYLE_LOSS_NAMES, Options, Run, layer_weight_vector
from nstjax.style_mix import check_style_losses


@dataclasses.dataclass(frozen=True)
class Item:
    """One run to plan.

    Attributes:
        run: the run (its ``content`` and ``style`` index the images the batch is given).
        shape: its output ``(height, width)``.
        key: the caller's handle for the run (an index, a sweep run); results come back by it.
    """

    run: Run
    shape: tuple[int, int]
    key: Hashable


@dataclasses.dataclass
class Group:
    """Runs that compile together: one output shape, one set of options, one program.

    Attributes:
        shape: output ``(height, width)``.
        options: the options every run of the group shares.
        program: the compiled program serving all of them.
        items: the runs, in the caller's order.
    """

    shape: tuple[int, int]
    options: Options
    program: engine.Program
    items: list[Item]

    @property
    def name(self) -> str:
        """A short description, e.g. ``"48x64 adam 100 steps"``."""
        o = self.options
        return f"{self.shape[0]}x{self.shape[1]} {o.optimizer} {o.steps} steps"

    def run_bytes(self, platform: str | None = None) -> int:
        """Estimated device memory of one run of this group (:func:`memory.run_bytes`) on
        ``platform`` (default: JAX's default backend)."""
        import jax

        p = self.program
        return memory.run_bytes(
            self.shape,
            deepest_layer(p.layers),
            dtype=p.dtype,
            optimizer=p.optimizer,
            lbfgs_history=p.lbfgs_history,
            remat=p.remat,
            platform=platform or jax.default_backend(),
        )


@dataclasses.dataclass
class Batch:
    """One compiled call: some runs of a group, padded to ``size``.

    Attributes:
        group: the group the runs belong to.
        items: the real runs (``len(items) <= size``).
        size: the run axis of the compiled call; rows past ``len(items)`` repeat the last run and
            are discarded.
        first_step: steps the runs made before this batch (the earlier scales of a
            coarse-to-fine schedule), so that snapshots count a run's own steps.
    """

    group: Group
    items: list[Item]
    size: int
    first_step: int = 0

    @property
    def runs(self) -> list[Run]:
        """The runs of the compiled call, padding included."""
        runs = [item.run for item in self.items]
        return runs + [runs[-1]] * (self.size - len(runs))

    @property
    def steps(self) -> int:
        return self.group.options.steps


def deepest_layer(layers: Sequence[str]) -> str:
    """The deepest of ``layers`` (``conv1_1`` when there are none)."""
    return max(layers, key=LAYER_INDEX.__getitem__) if layers else LAYER_NAMES[0]


def program_for(runs: Sequence[Run], options: Options, convolution: str) -> engine.Program:
    """The compiled program serving ``runs``: the union of the layers any of them weights."""
    content = sum(layer_weight_vector(r.content_layers, "content-layers") for r in runs)
    style = sum(layer_weight_vector(r.style_layers, "style-layers") for r in runs)
    content, style = np.asarray(content), np.asarray(style)
    used: dict[str, np.ndarray] = {}  # loss -> the layers its runs weight
    for r in runs:
        layers = layer_weight_vector(r.style_layers, "style-layers")
        for name, w in r.style_loss_weights().items():
            if w > 0:
                used[name] = used.get(name, 0) + layers
    style_losses = tuple(name for name in STYLE_LOSS_NAMES if name in used)
    style_loss_layers = tuple(
        tuple(n for n, w in zip(LAYER_NAMES, used[name]) if w > 0) for name in style_losses
    )
    guided = any(r.masks is not None for r in runs)
    check_style_losses(style_losses, guided)  # runs with masks beside a loss without them
    return engine.Program(
        content_layers=tuple(n for n, w in zip(LAYER_NAMES, content) if w > 0),
        style_layers=tuple(n for n, w in zip(LAYER_NAMES, style) if w > 0),
        pooling=options.pooling,
        optimizer=options.optimizer,
        lbfgs_history=options.lbfgs_history,
        dtype=options.dtype,
        remat=options.remat,
        guided=guided,
        convolution=convolution,
        style_losses=style_losses,
        style_loss_layers=style_loss_layers,
        average_decay=options.average_decay,
    )


def group(
    items: Sequence[Item], options_of: Callable[[Item], Options], convolution: str
) -> list[Group]:
    """Groups runs by output shape and options, in order of first appearance.

    Args:
        items: the runs.
        options_of: each run's options (one value for a call; per run in a sweep).
        convolution: the convolution chosen for the call (:func:`nstjax.kernels.choose`).

    Returns:
        The groups, each with its program.
    """
    found: dict[tuple, tuple[Options, list[Item]]] = {}
    for item in items:
        options = options_of(item)
        key = (tuple(item.shape), options.program_key())
        found.setdefault(key, (options, []))[1].append(item)
    return [
        Group(
            tuple(shape),
            options,
            program_for([i.run for i in members], options, convolution),
            members,
        )
        for (shape, _), (options, members) in found.items()
    ]


def batch_size(
    n_runs: int,
    per_run_bytes: int,
    budget_bytes: float,
    n_devices: int = 1,
    requested: int | None = None,
) -> int:
    """Runs per compiled batch: a multiple of ``n_devices``, no bigger than needed for ``n_runs``.

    Args:
        n_runs: runs to batch.
        per_run_bytes: one run's estimated memory (:meth:`Group.run_bytes`).
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


def cut(group: Group, items: Sequence[Item], size: int) -> list[Batch]:
    """``items`` (runs of ``group``) in consecutive batches of ``size``."""
    return [Batch(group, list(items[i : i + size]), size) for i in range(0, len(items), size)]


def check_fits(group: Group, budget_bytes: float, sweep: bool = False) -> None:
    """Refuses a group whose single run cannot fit in a device's memory budget.

    Args:
        group: the runs of one output shape.
        budget_bytes: the memory one device may use.
        sweep: advise the sweep config's fields rather than ``nstjax stylize``'s flags.

    Raises:
        NstjaxError: with the estimate and what would make it fit.
    """
    need = group.run_bytes()
    if need <= budget_bytes:
        return
    if sweep:
        remat = "" if group.program.remat else "--config.model.remat=True or "
        advice = f"{remat}a smaller --config.data.size"
    else:
        remat = "" if group.program.remat else "--remat, "
        advice = f"{remat}a smaller --size or --multiscale"
    raise NstjaxError(
        f"output {group.shape[0]}x{group.shape[1]} needs about {need / 1e9:.1f} GB per run "
        f"(estimated), more than the {budget_bytes / 1e9:.1f} GB this device may use; try "
        f"{advice}"
    )


def check_large_enough(group: Group) -> None:
    """Refuses outputs too small for the deepest layer computed (VGG's poolings would leave
    nothing, and a Gram of nothing is NaN)."""
    deepest = deepest_layer(group.program.layers)
    need = downsampling(deepest)
    if min(group.shape) < need:
        raise NstjaxError(
            f"output {group.shape[0]}x{group.shape[1]} is too small for {deepest} (each side "
            f"needs >= {need} px); raise the size"
        )


def plan(
    items: Sequence[Item],
    options: Options,
    convolution: str,
    *,
    n_devices: int = 1,
    budget_bytes: float | None = None,
) -> list[Batch]:
    """Every batch of a call whose runs share ``options``: groups, checks, sizes, cuts.

    Args:
        items: the runs with their output shapes.
        options: the call's options (``batch_size`` caps the batch; otherwise memory does).
        convolution: the chosen convolution.
        n_devices: devices the run axis is sharded over.
        budget_bytes: memory one device may use (default: a share of what it has).

    Returns:
        The batches, group by group.

    Raises:
        NstjaxError: a group whose runs cannot fit, or whose output is too small.
    """
    if budget_bytes is None:
        budget_bytes = memory.device_memory_bytes() * memory.BUDGET_FRACTION
    batches = []
    for g in group(items, lambda _: options, convolution):
        batches += batches_of(g, g.items, budget_bytes, n_devices, options.batch_size)
    return batches


def batches_of(
    group: Group,
    items: Sequence[Item],
    budget_bytes: float,
    n_devices: int = 1,
    requested: int | None = None,
    *,
    run_bytes: float | None = None,
    sweep: bool = False,
) -> list[Batch]:
    """``items`` (runs of ``group``) checked and cut into batches that fit: the batching of
    every call and sweep.

    Args:
        group: the runs' group.
        items: the runs of it to batch (a sweep's: this process's unfinished share).
        budget_bytes: memory one device may use.
        n_devices: devices the run axis is sharded over.
        requested: a batch size asked for explicitly (:func:`batch_size`).
        run_bytes: one run's memory as the user gave it (then not estimated nor checked).
        sweep: advise the sweep config's fields in errors (:func:`check_fits`).

    Raises:
        NstjaxError: the output is too small, or one run cannot fit.
    """
    check_large_enough(group)
    if run_bytes is None:
        check_fits(group, budget_bytes, sweep=sweep)
    per_run = run_bytes or group.run_bytes()
    size = batch_size(len(items), per_run, budget_bytes, n_devices, requested)
    return cut(group, items, size)


def image_steps(batches: Sequence[Batch]) -> int:
    """Generated-image steps the batches advance in all (what a progress display counts)."""
    return sum(len(b.items) * b.steps for b in batches)
