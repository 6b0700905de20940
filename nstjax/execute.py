"""The executor: planned batches -> results. The one road every entry point takes.

:func:`plan_runs` plans the runs (:mod:`nstjax.batch.plan`: grouped by output shape and options,
batched to fit memory); :func:`run_plan` prepares the kernels once and runs every batch through
:func:`run_batch`, which builds its arrays (:mod:`nstjax.batch.build`) and optimises it as one
compiled program (:func:`nstjax.engine.optimize`), telling an :class:`Observer` as it goes.
:mod:`nstjax.api` (``stylize``, ``stylize_batch``), :mod:`nstjax.schedule`, the CLI and sweeps
are thin layers over these.
"""

import dataclasses
import functools
from collections.abc import Hashable, Sequence

import jax
import numpy as np

from nstjax import color, engine, kernels, vgg
from nstjax.batch import build, plan
from nstjax.batch.build import Images
from nstjax.quality import of_results
from nstjax.run import Options, Run, validate_options


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
        converged_at: step at which the run met its loss or gradient tolerance, else None.
        step_evaluations: ``[steps]`` the loss/gradient evaluations of each step (a line search
            makes several a step; 0 after the run stopped).
        quality: the quality measures of ``image`` (:data:`nstjax.quality.MEASURES` name ->
            value) when ``Options.quality`` asked for them, else None.
    """

    run: Run
    image: np.ndarray
    history: np.ndarray
    final: dict[str, float]
    failed_at: int | None
    key: Hashable = None
    converged_at: int | None = None
    step_evaluations: np.ndarray | None = None
    quality: dict[str, float] | None = None

    @property
    def evaluations(self) -> int:
        """The loss/gradient evaluations the run made in all."""
        return 0 if self.step_evaluations is None else int(np.sum(self.step_evaluations))


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

        Returns:
            None, or a ``[runs]`` bool mask of runs to stop now, each alone (it keeps its
            current image, as a converged run does; a search prunes runs so).
        """

    def batch_finished(self, batch: plan.Batch, results: list[Result]) -> None:
        """A batch's results are ready (in the order of ``batch.items``)."""

    def resume_from(self, batch: plan.Batch, like: engine.State) -> engine.Start | None:
        """Where ``batch`` resumes (a :class:`nstjax.engine.Start` whose state is shaped as
        ``like``, abstract), or ``None``: from step 0."""
        return None

    def state_done(self, batch: plan.Batch, progress: engine.Start) -> None:
        """After each chunk (after :meth:`chunk_done`): the batch's progress, from which
        :meth:`resume_from` can resume it (the state is donated by the next chunk)."""


class Observers(Observer):
    """Several observers called in turn."""

    def __init__(self, *observers):
        self.observers = observers

    def batch_started(self, batch):
        for o in self.observers:
            o.batch_started(batch)

    def chunk_done(self, batch, steps, metrics, images):
        stops = [o.chunk_done(batch, steps, metrics, images) for o in self.observers]
        stops = [np.asarray(s, bool) for s in stops if s is not None]
        return np.logical_or.reduce(stops) if stops else None

    def batch_finished(self, batch, results):
        for o in self.observers:
            o.batch_finished(batch, results)

    # Observers written before these two hooks existed may lack them.
    def resume_from(self, batch, like):
        hooks = (getattr(o, "resume_from", None) for o in self.observers)
        starts = (hook(batch, like) for hook in hooks if hook is not None)
        return next((s for s in starts if s is not None), None)

    def state_done(self, batch, progress):
        for o in self.observers:
            if hasattr(o, "state_done"):
                o.state_done(batch, progress)


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


def _place_state(mesh, state: engine.State) -> engine.State:
    """A resumed state sharded as :func:`_place_on_mesh` shards the batch (the step replicated)."""
    from jax.sharding import NamedSharding, PartitionSpec

    by_run = NamedSharding(mesh, PartitionSpec("runs"))
    step = jax.device_put(state.step, NamedSharding(mesh, PartitionSpec()))
    return jax.device_put(state._replace(step=None), by_run)._replace(step=step)


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
    program, options = batch.group.program, batch.group.options
    built = build.build(params, program, batch.runs, contents, styles)
    if mesh is not None:
        params, built = _place_on_mesh(mesh, params, built)
    on_state = lambda progress: Observers(observer).state_done(batch, progress)
    outcome = engine.optimize(
        params,
        program,
        built,
        options.steps,
        loop=options.loop,
        chunk=min(options.chunk, options.steps),
        hooks=engine.Hooks(_chunk_hook(observer, batch), on_state),
        start=_resume_point(observer, batch, built.pixels, mesh),
    )
    results = _results_of(batch, outcome, contents)
    if options.quality:
        scores = of_results.measure_results(params, results, contents, styles, program.convolution)
        for result, score in zip(results, scores):
            result.quality = score
    observer.batch_finished(batch, results)
    return results


def _chunk_hook(observer: Observer, batch: plan.Batch):
    """The engine's ``on_chunk`` for ``batch``: tells ``observer`` about the real runs and pads
    its stop mask with the padding runs (which run on)."""
    program, n = batch.group.program, len(batch.items)

    def on_chunk(done, state, metrics):
        images = lambda: np.clip(
            np.asarray(program.output_pixels(state.pixels, state.opt_state)[:n]) / 255.0, 0, 1
        )
        stop = observer.chunk_done(batch, done, metrics[:, :n], images)
        if stop is not None:  # the padding rows run on
            return np.concatenate([np.asarray(stop, bool), np.zeros(batch.size - n, bool)])
        return None

    return on_chunk


def _resume_point(observer: Observer, batch: plan.Batch, pixels, mesh) -> engine.Start | None:
    """Where the observer resumes ``batch`` (initial ``pixels``), placed on ``mesh``; ``None``:
    from step 0."""
    like = jax.eval_shape(functools.partial(engine.init_state, batch.group.program), pixels)
    start = observer.resume_from(batch, like) if hasattr(observer, "resume_from") else None
    if start is not None and mesh is not None:
        start = start._replace(state=_place_state(mesh, start.state))
    return start


def _results_of(batch: plan.Batch, outcome: engine.Outcome, contents: Images) -> list[Result]:
    """One :class:`Result` per real run of ``batch`` from the engine's ``outcome`` (images in
    [0, 1], the luminance-only runs recoloured from their content)."""
    results = []
    for j, item in enumerate(batch.items):
        image = np.clip(outcome.pixels[j] / 255.0, 0.0, 1.0)
        if item.run.colors == "luminance":
            image = color.luminance_transfer(image, contents[item.run.content])
        step = lambda a, j=j: int(a[j]) if a[j] >= 0 else None
        results.append(
            Result(
                run=item.run,
                image=image,
                history=outcome.history[:, j],
                final=dict(zip(engine.METRICS, map(float, outcome.final[j]))),
                failed_at=step(outcome.failed_at),
                key=item.key,
                converged_at=step(outcome.converged_at),
                step_evaluations=outcome.evaluations[:, j],
            )
        )
    return results


def checked_options(options: Options | None, option_fields: dict, mesh) -> Options:
    """``options`` with ``option_fields`` applied, validated, and the convolution chosen."""
    try:
        options = dataclasses.replace(options or Options(), **option_fields)
    except TypeError as e:
        raise TypeError(f"unknown option: {e}") from e
    validate_options(options)
    return with_convolution(options, mesh.size if mesh is not None else 1)


def run_plan(
    params,
    batches: Sequence[plan.Batch],
    contents: Images,
    styles: Images,
    *,
    mesh: jax.sharding.Mesh | None = None,
    observer: Observer | None = None,
) -> list[Result]:
    """Runs every batch of a plan (:func:`plan_runs`), the parameters prepared once.

    Args:
        params: VGG parameters (prepared here for the plan's convolution).
        batches: the plan: its runs complete (masks, initial images), executed as planned.
        contents: content images at the plan's output sizes.
        styles: style images.
        mesh: see :func:`stylize_batch`.
        observer: progress and snapshot hooks (a sweep writes each batch's results from
            :meth:`Observer.batch_finished`).

    Returns:
        One :class:`Result` per planned run, in the plan's order (``Result.key`` says which).
    """
    if not batches:
        return []
    params = vgg.prepare(params, batches[0].group.program.convolution)
    return run_prepared(params, batches, contents, styles, mesh=mesh, observer=observer)


def run_prepared(
    params,
    batches: Sequence[plan.Batch],
    contents: Images,
    styles: Images,
    *,
    mesh: jax.sharding.Mesh | None = None,
    observer: Observer | None = None,
) -> list[Result]:
    """:func:`run_plan` with ``params`` already prepared for the plan's convolution."""
    results = []
    for batch in batches:
        results += run_batch(params, batch, contents, styles, mesh=mesh, observer=observer)
    return results
