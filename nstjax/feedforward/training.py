"""Training K transformation networks: inputs checked and loaded, then one compiled step a step.

:func:`train` is the Python API; ``nstjax train`` is a thin layer over it. Everything the user
gave is read and checked (the content folder, every style image, the held-out images, the first
batch, the model folder) before anything is compiled.
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import grain
import jax
import jax.numpy as jnp
import numpy as np

from nstjax import image, resample, style_mix, targets, vgg
from nstjax import run as run_lib
from nstjax.architecture import downsampling
from nstjax.batch.build import check_patch_sizes
from nstjax.errors import NstjaxError
from nstjax.feedforward import advance, data, plots, step
from nstjax.feedforward import config as config_lib
from nstjax.feedforward.checkpoint import Checkpoints, check_content, write_config
from nstjax.feedforward.config import TrainConfig
from nstjax.feedforward.placement import Placement, local
from nstjax.feedforward.progress import TrainProgress
from nstjax.style_losses import STYLE_LOSSES
from nstjax.validate import image_memory, output_folder

LOG_EVERY = 10  # steps between fetches of the metrics from the device


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` leaves behind (besides the model folder).

    Attributes:
        model_dir: the model folder.
        state: the K networks at the end (host arrays, leading axis K).
        history: ``[steps, K, 4]`` loss terms (:data:`~nstjax.feedforward.step.METRICS`).
        names: the K networks' names (used in file names).
        rejected: ``[steps, K]`` bool: the steps rejected as non-finite, per network
            (:class:`~nstjax.feedforward.step.TrainState`).
        stopped: the names of the networks stopped after ``config.max_nonfinite_steps``
            rejected steps in a row (their last finite state is the one saved).
    """

    model_dir: Path
    state: step.TrainState
    history: np.ndarray
    names: list[str]
    rejected: np.ndarray
    stopped: list[str]


def network_names(config: TrainConfig) -> list[str]:
    """One name per network: the style's file stem, numbered when several share a style."""
    stems = [Path(s).stem for s in config.per_network("styles")]
    return [f"{s}-{k}" if stems.count(s) > 1 else s for k, s in enumerate(stems)]


@dataclasses.dataclass
class _Inputs:
    train_files: list[Path]
    content_files: list[Path]  # training then held-out, as content.json records them
    held_out: np.ndarray  # [N, S, S, 3]
    held_out_names: list[str]
    styles: list[np.ndarray]  # one per network
    batches: grain.MapDataset  # this process's rows of every step's batch


def _load_inputs(config: TrainConfig, model_dir: Path, rows: range | None = None) -> _Inputs:
    """Reads and checks every input (of the batches, this process's ``rows``); raises
    NstjaxError before anything compiles."""
    config_lib.validate(config)
    devices = jax.device_count()
    if config.batch_size % devices:
        raise NstjaxError(f"--batch-size {config.batch_size}: not a multiple of {devices} devices")
    output_folder(model_dir, "--output")
    train_files, held_files = data.split_content(config.content_dir, config.holdout)
    for path in train_files:  # an empty or non-image file is refused now, not steps into training
        image.image_shape(path, "content image")
    style_size = config.style_size or config.size
    image_memory([(config.size, config.size)] * 2, "--size", config.size)
    for path in set(config.styles):
        shape = resample.long_side_shape(image.image_shape(path, "style image"), style_size)
        image_memory([shape], "--style-size" if config.style_size else "--size", style_size)
    loaded = {p: image.load_image(p, style_size, "style image") for p in set(config.styles)}
    factor = max(downsampling(n) for n in config.style_layers)
    for path, style in loaded.items():
        if min(style.shape[:2]) < factor:
            raise NstjaxError(
                f"style image '{path}': {style.shape[1]}x{style.shape[0]} at --style-size "
                f"{style_size} is too small for {vgg.deepest(config.style_layers)} "
                f"(needs {factor} px a side)"
            )
    objective = objective_of(config)
    for style in loaded.values():
        check_patch_sizes(objective.style, style.shape[:2], (config.size, config.size))
    center = np.random.default_rng(0)
    held = [data.load_square(p, config.size, "center", center) for p in held_files]
    batches = data.training_batches(
        train_files, config.size, config.batch_size, config.crop, config.seed, rows=rows
    )
    batches[0]  # the first batch's files must read
    return _Inputs(
        train_files=train_files,
        content_files=train_files + held_files,
        held_out=np.stack(held) if held else np.zeros((0, config.size, config.size, 3)),
        held_out_names=[p.stem for p in held_files],
        styles=[loaded[p] for p in config.per_network("styles")],
        batches=batches,
    )


def style_loss_mixes(config: TrainConfig) -> list[dict[str, float]]:
    """Each network's style losses and their weights (``{name: weight}``)."""
    return [style_mix.parse_style_loss(s, "--style-loss") for s in config.per_network("style_loss")]


def objective_of(config: TrainConfig) -> step.Objective:
    """The static part of the training step for ``config``."""
    used = set().union(*style_loss_mixes(config))
    return step.Objective(
        net=config.network.module(),
        content_layers=tuple(config.content_layers),
        style_layers=tuple(config.style_layers),
        pooling=config.pooling,
        style_losses=tuple(name for name in STYLE_LOSSES if name in used),
        network_axis=config.network_axis,
    )


def hyper_of(config: TrainConfig, objective: step.Objective) -> step.Hyper:
    """The per-network weights ``[K]`` (and layer weights ``[K, 16]``) of ``config``."""
    k = config.num_networks
    content_layers = run_lib.layer_weight_vector(config.content_layers, "--content-layers")
    style_layers = run_lib.layer_weight_vector(config.style_layers, "--style-layers")
    mixes = style_loss_mixes(config)
    key = jax.random.key_data(jax.random.key(config.seed))  # every network alike, as alone
    return step.Hyper(
        content_weight=jnp.asarray(config.per_network("content_weight"), jnp.float32),
        style_weight=jnp.asarray(config.per_network("style_weight"), jnp.float32),
        tv_weight=jnp.asarray(config.per_network("tv_weight"), jnp.float32),
        content_layer_weights=jnp.asarray(np.tile(content_layers, (k, 1))),
        style_layer_weights=jnp.asarray(np.tile(style_layers, (k, 1))),
        style_loss_weights=jnp.asarray(
            [[mix.get(n, 0.0) for n in objective.style_losses] for mix in mixes], jnp.float32
        ).reshape(k, len(objective.style_losses)),
        style_key=jnp.tile(key[None], (k, 1)),
        max_nonfinite_steps=jnp.full((k,), config.max_nonfinite_steps, jnp.int32),
    )


def _style_targets_of(vgg_params, objective: step.Objective, style: np.ndarray) -> dict:
    """One style image's targets (loss -> layer -> representation)."""
    return targets.style_targets(
        vgg_params, jnp.asarray(style), program=objective.style, pooling=objective.pooling,
        dtype="float32",
    )  # fmt: skip


def style_targets(vgg_params, objective: step.Objective, styles: list[np.ndarray]):
    """Each network's :class:`~nstjax.feedforward.step.Targets` (leading axis K), computed once
    per distinct style image (``styles`` holds one array per network, shared ones the same)."""
    by_image: dict[int, dict] = {}
    for style in styles:
        if id(style) not in by_image:
            by_image[id(style)] = _style_targets_of(vgg_params, objective, style)
    found = [by_image[id(style)] for style in styles]
    stacked = {
        name: {layer: style_mix.stack([f[name][layer] for f in found]) for layer in by_layer}
        for name, by_layer in found[0].items()
    }
    return step.Targets(style=stacked)


def stylise_all(variables, net, images: jax.Array) -> jax.Array:
    """Every network's outputs ``[K, N, H, W, 3]`` (variables with a leading axis K)."""
    return jax.vmap(step.stylise, in_axes=(0, None, None))(variables, net, images)


_stylise_all = jax.jit(stylise_all, static_argnums=1)
_init_state = jax.jit(step.init_state, static_argnums=0)


def inference_variables(state: step.TrainState) -> dict:
    return {
        "params": state.params,
        **({"batch_stats": state.batch_stats} if state.batch_stats else {}),
    }


def _save_samples(model_dir: Path, done: int, state, net, inputs: _Inputs, names) -> None:
    if not len(inputs.held_out):
        return
    outputs = np.asarray(_stylise_all(inference_variables(state), net, inputs.held_out))
    folder = model_dir / "samples" / f"{done:06d}"
    for k, name in enumerate(names):
        for i, content in enumerate(inputs.held_out_names):
            image.save_image(folder / f"{content}__{name}.png", outputs[k, i], "sample image")


def _start(config: TrainConfig, checkpoints: Checkpoints, objective, placement: Placement, feed):
    """The state to start from (the latest checkpoint, or fresh networks), its history and its
    rejected-step flags; the data iterator ``feed`` is moved to the checkpoint's position."""
    learning_rate = jnp.asarray(config.per_network("learning_rate"), jnp.float32)
    # XLA's RngBitGenerator: compiles in a fraction of threefry's time on CPU
    key = jax.random.key(config.seed, impl="rbg")
    state = _init_state(objective, key, learning_rate)
    state = placement.replicate(state)
    history = np.full((config.steps, config.num_networks, len(step.METRICS)), np.nan, np.float32)
    rejected = np.zeros((config.steps, config.num_networks), bool)
    start = checkpoints.latest_step() or 0
    if start:
        state, saved, saved_rejected = checkpoints.restore(start, state, data=feed)
        rows = min(len(saved), config.steps)
        history[:rows] = saved[:rows]
        rejected[:rows] = saved_rejected[:rows]
    return min(start, config.steps), state, history, rejected


class _Record:
    """The host's record of a run: the history and rejected flags as they are fetched from the
    device (every :data:`LOG_EVERY` steps, and before saving), shown and passed on."""

    def __init__(self, config, names, history, rejected, bar, on_step):
        self.names, self.history, self.rejected = names, history, rejected
        self.bar, self.on_step = bar, on_step
        self.limit = config.max_nonfinite_steps
        self.pending: list[tuple[int, jax.Array, jax.Array]] = []

    def add(self, done: int, metrics: jax.Array, rejected: jax.Array) -> None:
        self.pending.append((done, metrics, rejected))

    def stopped(self, state: step.TrainState) -> list[str]:
        in_a_row = np.asarray(local(state.rejected_in_a_row))
        return [n for n, count in zip(self.names, in_a_row) if count >= self.limit]

    def note(self, done: int, stopped: list[str]) -> str:
        counts = self.rejected[:done].sum(axis=0)
        if not counts.any():
            return ""
        text = ", ".join(f"{n} {c}" for n, c in zip(self.names, counts) if c)
        return f"non-finite steps rejected: {text}" + (
            f"; stopped: {', '.join(stopped)}" if stopped else ""
        )

    def flush(self, state: step.TrainState) -> None:
        stopped = self.stopped(state) if self.pending else []
        for done, metrics, rejected in self.pending:
            self.history[done - 1] = np.asarray(local(metrics))
            self.rejected[done - 1] = np.asarray(local(rejected))
            if self.bar is not None:
                self.bar.update(done, self.history[done - 1], self.note(done, stopped))
            if self.on_step is not None:
                self.on_step(done, self.history[done - 1])
        self.pending.clear()


class _StepInputs(NamedTuple):
    """What every training step takes besides the state and the images (placed on the devices)."""

    vgg_params: dict
    objective: step.Objective
    style: step.Targets
    hyper: step.Hyper

    def run_step(self, state: step.TrainState, images: jax.Array, done: jax.Array):
        """One step from ``state`` (donated) after ``done`` steps
        (:func:`nstjax.feedforward.advance.advance`)."""
        args = (self.vgg_params, self.objective, images, self.style, self.hyper, done)
        return advance.advance(state, *args)


def _step_inputs(config: TrainConfig, vgg_params, inputs: _Inputs, placement: Placement):
    """The VGG (loaded from ``config.weights`` when ``None``), the objective, each network's style
    targets and hyperparameters, replicated over ``placement``'s devices."""
    vgg_params = vgg.load_params(config.weights) if vgg_params is None else vgg_params
    objective = objective_of(config)
    vgg_params = {k: v for k, v in vgg_params.items() if k != "prepared"}
    style = placement.replicate(style_targets(vgg_params, objective, inputs.styles))
    hyper = placement.replicate(hyper_of(config, objective))
    return _StepInputs(placement.replicate(vgg_params), objective, style, hyper)


@dataclasses.dataclass
class _Writer:
    """What a run writes as it goes, when due: the metrics fetched (:class:`_Record`), the
    checkpoints, the held-out samples and the loss curve."""

    config: TrainConfig
    model_dir: Path
    checkpoints: Checkpoints
    record: _Record
    inputs: _Inputs
    names: list[str]
    net: Any

    def after_step(self, done: int, state, feed, *, samples: bool) -> None:
        """After ``done`` steps; ``feed``'s position goes into a checkpoint, ``samples``: this
        process writes the samples and the loss curve."""
        config, history = self.config, self.record.history
        last = done == config.steps
        save = done % config.save_every == 0 or last
        sample = (config.sample_every and done % config.sample_every == 0) or last
        if done % LOG_EVERY == 0 or save or sample:
            self.record.flush(state)
        if sample and samples:  # before the checkpoint: a resume starts after a saved step
            _save_samples(self.model_dir, done, local(state), self.net, self.inputs, self.names)
            plots.loss_curve(self.model_dir / "loss.png", history[:done], self.names)
        if save:
            self.checkpoints.save(done, state, history, self.record.rejected, data=feed)


def train(
    config: TrainConfig,
    output: str | Path,
    *,
    vgg_params=None,
    progress: bool = True,
    on_step: Callable[[int, np.ndarray], None] | None = None,
) -> TrainResult:
    """Trains ``config.num_networks`` networks together, resuming from ``output``'s checkpoints.

    Args:
        config: the run (:class:`~nstjax.feedforward.config.TrainConfig`).
        output: the model folder: ``config.json``, ``checkpoints/``, ``loss.png``,
            ``samples/<step>/<content>__<network>.png``.
        vgg_params: the VGG-19 (:func:`nstjax.vgg.load_params`); loaded from
            ``config.weights`` when ``None``.
        progress: show the progress display on stderr.
        on_step: called as ``on_step(steps_done, metrics)`` after each step with the metrics
            ``[K, 4]`` (host numpy) whenever they are fetched (every few steps and at saves).

    Returns:
        The final state, the loss history, the networks' names, the rejected steps and the
        stopped networks (a stopped network does not raise: everything is saved first).

    Raises:
        NstjaxError: a bad input (before anything compiles).
    """
    model_dir = Path(output)
    placement = Placement.over_all_devices()
    inputs = _load_inputs(config, model_dir, placement.rows(config.batch_size))
    # checked before config.json is written, recorded after: a refused config changes neither
    check_content(model_dir, inputs.content_files, config.content_dir, write=False)
    write_config(model_dir, config, write=placement.is_leader)
    check_content(model_dir, inputs.content_files, config.content_dir, placement.is_leader)
    given = _step_inputs(config, vgg_params, inputs, placement)
    names = network_names(config)
    checkpoints = Checkpoints(model_dir, keep=config.keep)
    feed = data.batch_iterator(inputs.batches, config.data_workers)
    start, state, history, rejected = _start(config, checkpoints, given.objective, placement, feed)
    show = progress and placement.is_leader
    bar = TrainProgress(start, config.steps, config.batch_size) if show else None
    record = _Record(config, names, history, rejected, bar, on_step)
    writer = _Writer(config, model_dir, checkpoints, record, inputs, names, given.objective.net)
    try:
        for s in range(start, config.steps):
            images = placement.batch(next(feed), config.batch_size)
            state, metrics, flags = given.run_step(state, images, jnp.int32(s))
            record.add(s + 1, metrics, flags)
            writer.after_step(s + 1, state, feed, samples=placement.is_leader)
        record.flush(state)
    finally:
        if bar is not None:
            bar.close()
        checkpoints.close()
        feed.close()
    host = jax.device_get(local(state))
    return TrainResult(model_dir, host, history, names, rejected, record.stopped(host))
