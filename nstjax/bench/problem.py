"""A benchmark batch: the engine's per-run arrays for ``batch`` runs of one size.

The numbers a benchmark measures do not depend on what the images show, so by default the
content and style images are smooth deterministic patterns; callers that also compare losses
(``scripts/compare_torch.py``) pass real images.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nstjax import api, engine, targets


class Problem(NamedTuple):
    """Everything :func:`nstjax.engine.train_step` takes besides the parameters."""

    pixels: jax.Array  # [R, H, W, 3] initial images, 0-255 units
    hyper: engine.Hyper
    targets: engine.Targets


def pattern(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth, deterministic ``[H, W, 3]`` image in [0, 1] (sums of random sinusoids)."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    channels = []
    for _ in range(3):
        fy, fx, phase = rng.uniform(1, 12, 2).tolist() + [rng.uniform(0, 2 * np.pi)]
        channels.append(0.5 + 0.5 * np.sin(2 * np.pi * (fy * y + fx * x) + phase))
    return np.stack(channels, axis=-1).astype(np.float32)


def make_problem(
    params,
    program: engine.Program,
    batch: int,
    height: int,
    width: int | None = None,
    *,
    contents: Sequence[np.ndarray] | None = None,
    style: np.ndarray | None = None,
    run: api.Run | None = None,
) -> Problem:
    """Builds the per-run arrays of a batch of ``batch`` runs with the same hyperparameters.

    Args:
        params: VGG parameters.
        program: the static program (its layers and dtype shape the targets).
        batch: number of runs R.
        height: image height; also the width unless ``width`` is given.
        width: image width.
        contents: content images ``[H, W, 3]`` in [0, 1] at the output size, cycled over the runs;
            default: :func:`pattern` images.
        style: the style image ``[h, w, 3]`` in [0, 1]; default: a :func:`pattern` image.
        run: hyperparameters (weights, layer weights, learning rate) shared by every run; the
            content is initialised from the content image. Default: :class:`nstjax.api.Run`.

    Returns:
        A :class:`Problem`.
    """
    width = height if width is None else width
    run = run or api.Run()
    if contents is None:
        contents = [pattern(height, width, seed=1 + i) for i in range(min(batch, 4))]
    if style is None:
        style = pattern(height, width, seed=100)
    distinct = np.stack([np.asarray(c, np.float32) for c in contents])
    feats = targets.content_features(
        params,
        distinct,
        layers=program.content_layers,
        pooling=program.pooling,
        dtype=program.dtype,
    )
    grams = targets.style_grams(
        params,
        np.asarray(style, np.float32),
        layers=program.style_layers,
        pooling=program.pooling,
        dtype=program.dtype,
    )
    index = jnp.arange(batch) % len(distinct)
    run_targets = engine.Targets(
        content={name: f[index] for name, f in feats.items()},
        style={name: jnp.broadcast_to(g, (batch, *g.shape)) for name, g in grams.items()},
    )

    def per_run(value) -> jax.Array:
        value = jnp.asarray(value, jnp.float32)
        return jnp.broadcast_to(value, (batch, *value.shape))

    hyper = engine.Hyper(
        content_weight=per_run(run.content_weight),
        style_weight=per_run(run.style_weight),
        tv_weight=per_run(run.tv_weight),
        content_layer_weights=per_run(api.layer_weight_vector(run.content_layers, "content")),
        style_layer_weights=per_run(api.layer_weight_vector(run.style_layers, "style")),
        learning_rate=per_run(run.learning_rate),
    )
    pixels = jnp.asarray(distinct[np.arange(batch) % len(distinct)] * 255.0, jnp.float32)
    return Problem(pixels=pixels, hyper=hyper, targets=run_targets)
