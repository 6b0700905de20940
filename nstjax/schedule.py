"""Coarse-to-fine schedules: a run optimised at growing sizes, each scale from the last's image.

``--multiscale 256:300,512:200`` (Gatys et al. 2017's coarse-to-fine, neural-style's multires
scripts): each ``(size, steps)`` is a plan of its own (:func:`plan_schedule`, made before any
work so that the progress display and the memory checks see all of it), run through the same
executor as everything else (:func:`nstjax.execute.run_plan`).
"""

import dataclasses
from collections.abc import Sequence

import numpy as np

from nstjax import vgg
from nstjax.batch import plan
from nstjax.batch.build import Images
from nstjax.errors import NstjaxError
from nstjax.execute import Observer, Result, checked_options, plan_runs, run_prepared
from nstjax.resample import long_side_shape, resize, resize_long_side
from nstjax.run import Options, Run, validate_run


def parse_schedule(text: str) -> list[tuple[int, int]]:
    """``"256:300,512:200"`` -> ``[(256, 300), (512, 200)]`` (longer side : steps)."""
    schedule = []
    for item in text.split(","):
        size, sep, steps = item.strip().partition(":")
        try:
            pair = (int(size), int(steps))
        except ValueError:
            pair = None
        if not sep or pair is None or min(pair) < 1:
            raise NstjaxError(
                f"--multiscale {text!r}: expected SIZE:STEPS,... with positive integers"
            )
        schedule.append(pair)
    if [s for s, _ in schedule] != sorted(s for s, _ in schedule):
        raise NstjaxError(f"--multiscale {text!r}: sizes must grow from coarse to fine")
    return schedule


def plan_schedule(
    runs: Sequence[Run],
    shapes: Sequence[tuple[int, int]],
    schedule: Sequence[tuple[int, int]],
    options: Options,
    n_devices: int = 1,
) -> list[list[plan.Batch]]:
    """The batches of each scale of a coarse-to-fine schedule (shapes at full resolution); each
    batch's ``first_step`` counts the steps of the scales before it."""
    plans, done = [], 0
    for scale, (size, steps) in enumerate(schedule):
        final = scale == len(schedule) - 1  # only the last scale's images are measured
        batches = plan_runs(
            runs,
            [long_side_shape(s, size) for s in shapes],
            dataclasses.replace(options, steps=steps, quality=options.quality and final),
            n_devices=n_devices,
        )
        for batch in batches:
            batch.first_step = done
        plans.append(batches)
        done += steps
    return plans


def _replanned(batches: Sequence[plan.Batch], runs: Sequence[Run]) -> list[plan.Batch]:
    """The plan of one scale again, for ``runs`` (keyed by index, as planned before)."""
    shapes = {item.key: item.shape for batch in batches for item in batch.items}
    options = batches[0].group.options
    replanned = plan_runs(runs, [shapes[i] for i in range(len(runs))], options)
    for batch in replanned:
        batch.first_step = batches[0].first_step
    return replanned


def stylize_multiscale(
    params,
    contents: Sequence[np.ndarray],
    styles: Images,
    runs: Sequence[Run],
    schedule: Sequence[tuple[int, int]],
    options: Options | None = None,
    *,
    observer: Observer | None = None,
    **option_fields,
) -> list[Result]:
    """Coarse-to-fine: each ``(size, steps)`` of ``schedule`` starts from the previous result.

    Args:
        params: VGG parameters.
        contents: content images at full resolution; each scale resizes them so the longer side
            is that scale's size.
        styles: style images (resized per run by ``style_scale``, relative to each scale).
        runs: as for :func:`stylize_batch`; a run's ``init`` applies to the first scale only,
            each later scale starts from the previous one's image (:func:`upscaled_start`, with
            the content's detail when the run's ``upscale_detail`` is not 0).
        schedule: ``[(size, steps), ...]`` with growing sizes, e.g. ``[(256, 300), (512, 200)]``.
        options: static options; ``steps`` is each scale's.
        observer: hooks, called for every scale's batches.
        **option_fields: fields of :class:`nstjax.Options` overriding ``options``.

    Returns:
        One :class:`Result` per run at the last scale's size; ``history`` spans all scales.
    """
    options = checked_options(options, option_fields, None)
    for run in runs:
        validate_run(run, len(contents), len(styles))
    shapes = [contents[r.content].shape[:2] for r in runs]
    plans = plan_schedule(runs, shapes, schedule, options)
    return run_schedule(params, plans, schedule, contents, styles, runs, observer=observer)


def run_schedule(
    params,
    plans: Sequence[Sequence[plan.Batch]],
    schedule: Sequence[tuple[int, int]],
    contents: Sequence[np.ndarray],
    styles: Images,
    runs: Sequence[Run],
    *,
    observer: Observer | None = None,
) -> list[Result]:
    """Runs the plans of a coarse-to-fine schedule (:func:`plan_schedule`), each scale starting
    from the previous scale's images; see :func:`stylize_multiscale`. Returns one
    :class:`Result` per run, in the order of ``runs`` (their keys are their indices).

    A later scale's runs start from images that exist only once the scale before has run, so
    each later scale is planned again then, with those images as the runs' ``init`` (the same
    groups and batches as ``plans``, which served the checks and the progress count)."""
    params = vgg.prepare(params, plans[0][0].group.program.convolution)
    histories = [[] for _ in runs]
    current = list(runs)
    results: list[Result] = []
    for scale, ((size, _), batches) in enumerate(zip(schedule, plans)):
        scaled = [resize_long_side(c, size) for c in contents]
        if scale:
            batches = _replanned(batches, current)
        done = run_prepared(params, batches, scaled, styles, observer=observer)
        results = sorted(done, key=lambda r: r.key)
        for history, result in zip(histories, results):
            history.append(result.history)
        if scale + 1 < len(schedule):
            fine = schedule[scale + 1][0]
            used = {r.content for r in runs}  # each content's band once, whatever its runs
            bands = {c: detail_band(contents[c], size, fine) for c in used}
            current = [
                dataclasses.replace(
                    r, init=upscaled_start(res.image, bands[r.content], r.upscale_detail)
                )
                for r, res in zip(runs, results)
            ]
    for run, result, history in zip(runs, results, histories):
        result.run = run
        result.history = np.concatenate(history)
    return results


def detail_band(content: np.ndarray, coarse: int, fine: int) -> np.ndarray:
    """The content's detail between two scales: the content at ``fine`` px minus the content at
    ``coarse`` px resized to it (``[H, W, 3]`` at ``fine``), the band that upsampling a result
    from ``coarse`` leaves out. ``content`` is the content image in [0, 1], at any size."""
    fine_content = resize_long_side(content, fine)
    return fine_content - resize(resize_long_side(content, coarse), fine_content.shape[:2])


def upscaled_start(image: np.ndarray, band: np.ndarray, detail: float) -> np.ndarray:
    """A later scale's starting image: ``image`` (the previous scale's result, ``[h, w, 3]`` in
    [0, 1]) resized to the shape of ``band`` (:func:`detail_band`), plus ``detail`` times that
    band (:attr:`nstjax.Run.upscale_detail`), clipped to [0, 1]. Upsampling leaves the result
    without the detail the coarse scale could not hold; the content's own missing band puts the
    photo's part of it back before the first step. With ``detail`` 0 it is
    ``resize(image, shape)`` exactly, the reference implementations' start."""
    return np.clip(resize(image, band.shape[:2]) + detail * band, 0.0, 1.0).astype(np.float32)
