"""A benchmark batch: the engine's per-run arrays for ``batch`` runs of one size, made by the
package's one builder (:func:`nstjax.batch.build.build`).

The numbers a benchmark measures do not depend on what the images show, so by default the
content and style images are smooth deterministic patterns; callers that also compare losses
(``scripts/compare_torch.py``) pass real images.
"""

import dataclasses
from collections.abc import Sequence

import numpy as np

from nstjax import engine
from nstjax.batch.build import Built, build
from nstjax.run import Run

Problem = Built
"""A benchmark batch is what the builder makes for any batch (:class:`nstjax.batch.Built`)."""


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
    run: Run | None = None,
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
            content is initialised from the content image. Default: :class:`nstjax.Run`.

    Returns:
        A :class:`Problem`.
    """
    width = height if width is None else width
    if contents is None:
        contents = [pattern(height, width, seed=1 + i) for i in range(min(batch, 4))]
    if style is None:
        style = pattern(height, width, seed=100)
    run = run or Run()
    runs = [dataclasses.replace(run, content=i % len(contents), style=0) for i in range(batch)]
    contents = [np.asarray(c, np.float32) for c in contents]
    return build(params, program, runs, contents, [np.asarray(style, np.float32)])
