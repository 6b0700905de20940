"""The Python API: describe runs, get stylised images.

:func:`stylize_batch` optimises many runs as a few compiled batches, :func:`stylize` one pair;
both are thin layers over the executor (:mod:`nstjax.execute`: plan, build, optimise), whose
pieces are re-exported here for the command line and for callers who want the plan first.
"""

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from nstjax import vgg
from nstjax.batch.build import Images
from nstjax.execute import (  # noqa: F401  (re-exported: the executor's public pieces)
    Observer,
    Observers,
    Result,
    checked_options,
    plan_runs,
    run_batch,
    run_plan,
    run_prepared,
    with_convolution,
)
from nstjax.run import Options, Run, validate_run
from nstjax.schedule import stylize_multiscale


def stylize_batch(
    params,
    contents: Images,
    styles: Images,
    runs: Sequence[Run],
    options: Options | None = None,
    *,
    mesh: jax.sharding.Mesh | None = None,
    observer: Observer | None = None,
    **option_fields,
) -> list[Result]:
    """Optimises many runs, batched: one compiled program per output shape.

    Args:
        params: VGG parameters (:func:`nstjax.vgg.load_params`).
        contents: content images ``[H, W, 3]`` in [0, 1] (already at the output size).
        styles: style images ``[H, W, 3]`` in [0, 1], any size: each run resizes them to its
            ``style_scale`` times the output's longer side.
        runs: what to generate; see :class:`nstjax.Run`.
        options: static options (:class:`nstjax.Options`); default ``Options()``.
        mesh: a 1-D :class:`jax.sharding.Mesh` with axis ``"runs"``: each batch's run axis is
            sharded over it, the VGG parameters replicated. ``None``: one device.
        observer: progress and snapshot hooks (:class:`Observer`).
        **option_fields: fields of :class:`nstjax.Options` overriding ``options``
            (``steps=300``), a shorthand.

    Returns:
        One :class:`Result` per run, in the order of ``runs``.
    """
    options = checked_options(options, option_fields, mesh)
    for run in runs:
        validate_run(run, len(contents), len(styles))
    shapes = [contents[r.content].shape[:2] for r in runs]
    n_devices = mesh.size if mesh is not None else 1
    batches = plan_runs(runs, shapes, options, n_devices=n_devices)
    results = run_plan(params, batches, contents, styles, mesh=mesh, observer=observer)
    return sorted(results, key=lambda r: r.key)


def stylize(
    content: np.ndarray,
    style: np.ndarray,
    *,
    params=None,
    preset: str | None = None,
    **settings,
) -> np.ndarray:
    """Stylises one content image with one style image and returns the result.

    Args:
        content: ``[H, W, 3]`` in [0, 1], at the output size.
        style: ``[H, W, 3]`` in [0, 1].
        params: VGG parameters; loaded with :func:`nstjax.vgg.load_params` when ``None``.
        preset: a reference implementation's objective and settings (:mod:`nstjax.presets`:
            ``"paper"``, ``"gatys"``, ``"neural-style"``, ``"nstjax"``), with ``settings`` on
            top; its ``size`` is ignored (``content`` is at the output size), a multiscale
            schedule (``"gatys"``) resizes ``content`` per scale.
        **settings: fields of :class:`nstjax.Run` (weights, layers, learning_rate, init, seed,
            ...) and of :class:`nstjax.Options` (steps, optimizer, pooling, ...).

    Returns:
        ``[H, W, 3]`` float32 in [0, 1].
    """
    params = vgg.load_params() if params is None else params
    if preset is not None:
        from nstjax import preset_run

        made = preset_run.make(preset, content.shape[:2], **settings)
        if made.schedule:
            (result,) = stylize_multiscale(
                params, [content], [style], [made.run], made.schedule, made.options
            )
        else:
            (result,) = stylize_batch(params, [content], [style], [made.run], made.options)
        return result.image
    run_fields = {f.name for f in dataclasses.fields(Run)}
    run = Run(**{k: v for k, v in settings.items() if k in run_fields})
    option_fields = {k: v for k, v in settings.items() if k not in run_fields}
    (result,) = stylize_batch(params, [content], [style], [run], **option_fields)
    return result.image
