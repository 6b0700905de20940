"""Stylising with trained networks: a model folder loaded and checked, images in batches.

The networks are fully convolutional, so any image size works; images of the same size share a
compiled program, and a short last batch is padded (by repeating an image) to the batch size so
that it does not compile again. Each image is normalised on its own (instance norm, or batch
norm's running averages), so neither the padding nor the other images change a result.
"""

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.errors import NstjaxError, one_line
from nstjax.feedforward import config as config_lib
from nstjax.feedforward import step
from nstjax.feedforward.checkpoint import Checkpoints
from nstjax.feedforward.config import TrainConfig
from nstjax.feedforward.training import _stylise_all, network_names, objective_of


@dataclasses.dataclass(frozen=True)
class Model:
    """K trained networks.

    Attributes:
        config: the training config they were trained with.
        variables: ``{"params": ..., ["batch_stats": ...]}``, leading axis K on every leaf.
        step: the training step of the checkpoint.
        names: the networks' names (style stems), used in output file names.
    """

    config: TrainConfig
    variables: dict
    step: int
    names: list[str]


def _flat_shapes(tree, prefix=()) -> dict[str, tuple]:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flat_shapes(v, (*prefix, str(k))))
        return out
    return {"/".join(prefix): tuple(tree)}


def _check_shapes(model_dir, saved: dict, expected: dict) -> None:
    saved, expected = _flat_shapes(saved), _flat_shapes(expected)
    for name in sorted(set(saved) | set(expected)):
        if saved.get(name) != expected.get(name):
            raise NstjaxError(
                f"--model '{model_dir}': the checkpoint was trained for another network shape "
                f"than config.json describes ({name}: saved {saved.get(name)}, "
                f"expected {expected.get(name)})"
            )


def _read(model_dir, found: int, read, *args):
    """``read(*args)``, a damaged checkpoint reported in one line (orbax and tensorstore raise
    many kinds of error for a truncated or corrupted file)."""
    try:
        return read(*args)
    except Exception as e:  # noqa: BLE001 - whatever the storage layer raises is the file's fault
        raise NstjaxError(
            f"--model '{model_dir}': checkpoint {found} cannot be read, it is damaged or "
            f"incomplete ({type(e).__name__}: {one_line(e)[:80]}...); pass --step with another "
            "checkpoint or train again"
        ) from e


def load_model(model_dir: str | Path, step_number: int | None = None) -> Model:
    """Loads the latest (or the given) checkpoint of a model folder written by training.

    Raises:
        NstjaxError: the folder is missing, holds no config or checkpoint, or its checkpoint
            does not fit the network its config describes.
    """
    config = config_lib.load(model_dir)
    try:
        config_lib.validate(config)
    except NstjaxError as e:
        raise NstjaxError(f"--model '{model_dir}': config.json: {e}") from e
    if not (Path(model_dir) / "checkpoints").is_dir():
        raise NstjaxError(f"--model '{model_dir}': no checkpoints folder (training never saved)")
    checkpoints = Checkpoints(model_dir, read_only=True)
    found = checkpoints.latest_step() if step_number is None else step_number
    if found is None or found not in checkpoints.manager.all_steps():
        raise NstjaxError(f"--model '{model_dir}': no checkpoint (step {step_number})")
    objective = objective_of(config)
    lr = jnp.ones((config.num_networks,), jnp.float32)
    like = jax.eval_shape(lambda: step.init_state(objective, jax.random.key(0), lr))
    expected = jax.tree.map(lambda s: s.shape, like._asdict())
    saved = _read(model_dir, found, checkpoints.shapes, found)
    _check_shapes(
        model_dir,
        {k: saved.get(k, {}) for k in ("params", "batch_stats")},
        {k: expected[k] for k in ("params", "batch_stats")},
    )
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    like = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), like)
    state, _, _ = _read(model_dir, found, checkpoints.restore, found, like)
    checkpoints.close()
    variables = {"params": state.params}
    if state.batch_stats:
        variables["batch_stats"] = state.batch_stats
    return Model(config, variables, found, network_names(config))


ACTIVATION_COPIES = 4
"""Full-resolution activations of a network's first layer live at once during one pass (its
input, output, normalised output and the next layer's), about."""


def apply_bytes(config: TrainConfig, shape: tuple[int, int], batch_size: int) -> int:
    """Memory that stylising a batch of images of ``shape`` with every network needs, about:
    the first layer's full-resolution activations, per image and network."""
    per_image = ACTIVATION_COPIES * config.network.width * shape[0] * shape[1] * 4
    return per_image * batch_size * config.num_networks


def apply(model: Model, images: Sequence[np.ndarray], batch_size: int = 4) -> list[np.ndarray]:
    """Stylises each image with each of the model's networks.

    Args:
        model: from :func:`load_model`.
        images: ``[H, W, 3]`` float32 in [0, 1], any sizes (at least 1x1).
        batch_size: most images per compiled call.

    Returns:
        One ``[K, H, W, 3]`` array in [0, 1] per image, in order.
    """
    if batch_size < 1:
        raise NstjaxError(f"--batch-size must be >= 1, got {batch_size}")
    net = model.config.network.module()
    results: list[np.ndarray | None] = [None] * len(images)
    by_shape: dict[tuple, list[int]] = {}
    for i, img in enumerate(images):
        by_shape.setdefault(np.shape(img), []).append(i)
    for indices in by_shape.values():
        size = min(batch_size, len(indices))
        for first in range(0, len(indices), size):
            chunk = indices[first : first + size]
            padded = chunk + [chunk[-1]] * (size - len(chunk))
            batch = jnp.asarray(np.stack([images[i] for i in padded]), jnp.float32)
            outputs = np.asarray(_stylise_all(model.variables, net, batch))
            for j, i in enumerate(chunk):
                results[i] = outputs[:, j]
    return results
