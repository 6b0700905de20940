"""The Python API: describe runs, get stylised images. The one road from runs to compiled batches.

:func:`stylize_batch` plans the runs (:mod:`nstjax.batch.plan`: grouped by output shape and
options, batched to fit memory), builds each batch's arrays (:mod:`nstjax.batch.build`) and
optimises it as one compiled program (:func:`nstjax.engine.optimize`). The command line, sweeps
and the benchmark go through the same pieces: :func:`plan_runs`, :func:`run_batch`.
"""

import dataclasses
from collections.abc import Hashable, Sequence

import jax
import numpy as np

from nstjax import color, engine, kernels, vgg
from nstjax.batch import build, plan
from nstjax.batch.build import Images
from nstjax.errors import NstjaxError
from nstjax.image import long_side_shape, resize_long_side
from nstjax.run import Options, Run, validate_options, validate_run


@dataclasses.dataclass
class Result:
    """One run's outcome (host arrays).

    Attributes:
        run: the run.
        image: ``[H, W, 3]`` float32 in [0, 1]: the final image, or for a failed run the last
            finite one.
        history: ``[steps, 4]`` loss, content, style, tv before each step.
        final: loss terms of the final image.
        failed_at: step at which a non-finite value stopped the run, else None.
        key: the handle the caller planned the run with (:class:`nstjax.batch.Item`).
    """

    run: Run
    image: np.ndarray
    history: np.ndarray
    final: dict[str, float]
    failed_at: int | None
    key: Hashable = None


class Observer:
    """Hooks of the batch loop; override what you need (the default does nothing). The
    progress display (:class:`nstjax.progress.ProgressDisplay`) is one."""

    def batch_started(self, batch: plan.Batch) -> None:
        """A batch is about to be built and compiled."""

    def chunk_done(self, batch: plan.Batch, steps: int, metrics: np.ndarray, images) -> None:
        """``steps`` steps of ``batch`` are done.

        Args:
            batch: the batch.
            steps: steps done so far.
            metrics: ``[n, runs, 4]`` loss terms of the last chunk's steps (real runs only).
            images: a callable returning the current images ``[runs, H, W, 3]`` in [0, 1].
        """

    def batch_finished(self, batch: plan.Batch, results: list[Result]) -> None:
        """A batch's results are ready (in the order of ``batch.items``)."""


class Observers(Observer):
    """Several observers called in turn."""

    def __init__(self, *observers):
        self.observers = observers

    def batch_started(self, batch):
        for o in self.observers:
            o.batch_started(batch)

    def chunk_done(self, batch, steps, metrics, images):
        for o in self.observers:
            o.chunk_done(batch, steps, metrics, images)

    def batch_finished(self, batch, results):
        for o in self.observers:
            o.batch_finished(batch, results)


def with_convolution(options: Options, n_devices: int = 1) -> Options:
    """``options`` with the convolution chosen (once per call or sweep)."""
    if options.convolution is not None:
        return options
    return dataclasses.replace(options, convolution=kernels.choose(n_devices))


def plan_runs(
    runs: Sequence[Run],
    shapes: Sequence[tuple[int, int]],
    options: Options,
    *,
    n_devices: int = 1,
    budget_bytes: float | None = None,
) -> list[plan.Batch]:
    """The batches of a call (each run's key is its index in ``runs``).

    Args:
        runs: the runs.
        shapes: each run's output ``(height, width)``.
        options: the call's options, with the convolution chosen (:func:`with_convolution`).
        n_devices: devices the run axis is sharded over.
        budget_bytes: memory one device may use (default: a share of what it has).
    """
    items = [plan.Item(run, tuple(shape), i) for i, (run, shape) in enumerate(zip(runs, shapes))]
    return plan.plan(
        items, options, options.convolution, n_devices=n_devices, budget_bytes=budget_bytes
    )


def _place_on_mesh(mesh, params, built: build.Built):
    """Shards the per-run arrays' leading axis over ``mesh``'s ``"runs"`` axis; replicates params."""
    from jax.sharding import NamedSharding, PartitionSpec

    by_run = NamedSharding(mesh, PartitionSpec("runs"))
    replicated = NamedSharding(mesh, PartitionSpec())
    placed = build.Built(*(jax.device_put(x, by_run) for x in built))
    return jax.device_put(params, replicated), placed


def run_batch(
    params,
    batch: plan.Batch,
    contents: Images,
    styles: Images,
    *,
    mesh: jax.sharding.Mesh | None = None,
    observer: Observer | None = None,
) -> list[Result]:
    """Optimises one planned batch.

    Args:
        params: VGG parameters prepared for the batch's convolution (:func:`nstjax.vgg.prepare`).
        batch: from :func:`plan_runs` (or a sweep's planner).
        contents: the content images the runs index, at the batch's output size.
        styles: the style images the runs index.
        mesh: a 1-D mesh with axis ``"runs"`` to shard the batch over (its size divides
            ``batch.size``); ``None``: one device.
        observer: progress and snapshot hooks.

    Returns:
        One :class:`Result` per real run of the batch, in order.
    """
    observer = observer or Observer()
    observer.batch_started(batch)
    program, options, n = batch.group.program, batch.group.options, len(batch.items)
    built = build.build(params, program, batch.runs, contents, styles)
    if mesh is not None:
        params, built = _place_on_mesh(mesh, params, built)

    def on_chunk(done, state, metrics):
        images = lambda: np.clip(np.asarray(state.pixels[:n]) / 255.0, 0.0, 1.0)
        observer.chunk_done(batch, done, metrics[:, :n], images)

    outcome = engine.optimize(
        params,
        program,
        built.pixels,
        built.hyper,
        built.targets,
        options.steps,
        loop=options.loop,
        chunk=min(options.chunk, options.steps),
        on_chunk=on_chunk,
    )
    results = []
    for j, item in enumerate(batch.items):
        failed = int(outcome.failed_at[j])
        image = np.clip(outcome.pixels[j] / 255.0, 0.0, 1.0)
        if item.run.colors == "luminance":
            image = color.luminance_transfer(image, contents[item.run.content])
        final = dict(zip(engine.METRICS, map(float, outcome.final[j])))
        history = outcome.history[:, j]
        results.append(
            Result(item.run, image, history, final, failed if failed >= 0 else None, item.key)
        )
    observer.batch_finished(batch, results)
    return results


def _checked(options: Options | None, option_fields: dict, mesh) -> Options:
    try:
        options = dataclasses.replace(options or Options(), **option_fields)
    except TypeError as e:
        raise TypeError(f"unknown option: {e}") from e
    validate_options(options)
    return with_convolution(options, mesh.size if mesh is not None else 1)


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
    options = _checked(options, option_fields, mesh)
    for run in runs:
        validate_run(run, len(contents), len(styles))
    shapes = [contents[r.content].shape[:2] for r in runs]
    n_devices = mesh.size if mesh is not None else 1
    batches = plan_runs(runs, shapes, options, n_devices=n_devices)
    results = run_plan(params, batches, contents, styles, mesh=mesh, observer=observer)
    return sorted(results, key=lambda r: r.key)


def run_plan(
    params,
    batches: Sequence[plan.Batch],
    contents: Images,
    styles: Images,
    runs: Sequence[Run] | None = None,
    *,
    mesh: jax.sharding.Mesh | None = None,
    observer: Observer | None = None,
) -> list[Result]:
    """Runs every batch of a plan (:func:`plan_runs`), the parameters prepared once.

    Args:
        params: VGG parameters (prepared here for the plan's convolution).
        batches: the plan; its runs' keys are indices into the result list.
        contents: content images at the plan's output sizes.
        styles: style images.
        runs: the runs to execute, by key, in place of the planned ones (a caller that planned
            before it read its masks or initial images); default: the planned runs.
        mesh: see :func:`stylize_batch`.
        observer: progress and snapshot hooks (a sweep writes each batch's results from
            :meth:`Observer.batch_finished`).

    Returns:
        One :class:`Result` per planned run, in the plan's order (``Result.key`` says which).
    """
    if not batches:
        return []
    params = vgg.prepare(params, batches[0].group.program.convolution)
    return _execute(params, batches, contents, styles, runs, mesh, observer)


def _execute(params, batches, contents, styles, runs, mesh, observer) -> list[Result]:
    results = []
    for batch in batches:
        if runs is not None:
            batch = dataclasses.replace(
                batch, items=[dataclasses.replace(i, run=runs[i.key]) for i in batch.items]
            )
        results += run_batch(params, batch, contents, styles, mesh=mesh, observer=observer)
    return results


def stylize(content: np.ndarray, style: np.ndarray, *, params=None, **settings) -> np.ndarray:
    """Stylises one content image with one style image and returns the result.

    Args:
        content: ``[H, W, 3]`` in [0, 1], at the output size.
        style: ``[H, W, 3]`` in [0, 1].
        params: VGG parameters; loaded with :func:`nstjax.vgg.load_params` when ``None``.
        **settings: fields of :class:`nstjax.Run` (weights, layers, learning_rate, init, seed,
            ...) and of :class:`nstjax.Options` (steps, optimizer, pooling, ...).

    Returns:
        ``[H, W, 3]`` float32 in [0, 1].
    """
    run_fields = {f.name for f in dataclasses.fields(Run)}
    run = Run(**{k: v for k, v in settings.items() if k in run_fields})
    option_fields = {k: v for k, v in settings.items() if k not in run_fields}
    params = vgg.load_params() if params is None else params
    (result,) = stylize_batch(params, [content], [style], [run], **option_fields)
    return result.image


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
    for size, steps in schedule:
        batches = plan_runs(
            runs,
            [long_side_shape(s, size) for s in shapes],
            dataclasses.replace(options, steps=steps),
            n_devices=n_devices,
        )
        for batch in batches:
            batch.first_step = done
        plans.append(batches)
        done += steps
    return plans


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
        runs: as for :func:`stylize_batch`; a run's ``init`` applies to the first scale only.
        schedule: ``[(size, steps), ...]`` with growing sizes, e.g. ``[(256, 300), (512, 200)]``.
        options: static options; ``steps`` is each scale's.
        observer: hooks, called for every scale's batches.
        **option_fields: fields of :class:`nstjax.Options` overriding ``options``.

    Returns:
        One :class:`Result` per run at the last scale's size; ``history`` spans all scales.
    """
    options = _checked(options, option_fields, None)
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
    :class:`Result` per run, in the order of ``runs`` (their keys are their indices)."""
    params = vgg.prepare(params, plans[0][0].group.program.convolution)
    histories = [[] for _ in runs]
    current = list(runs)
    results: list[Result] = []
    for (size, _), batches in zip(schedule, plans):
        scaled = [resize_long_side(c, size) for c in contents]
        done = _execute(params, batches, scaled, styles, current, None, observer)
        results = sorted(done, key=lambda r: r.key)
        for history, result in zip(histories, results):
            history.append(result.history)
        current = [dataclasses.replace(r, init=res.image) for r, res in zip(runs, results)]
    for run, result, history in zip(runs, results, histories):
        result.run = run
        result.history = np.concatenate(history)
    return results
