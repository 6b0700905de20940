"""Running a prepared sweep into its workdir: this process's share, batch by batch, resumable."""

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

from nstjax import api, kernels
from nstjax.batch import memory, plan
from nstjax.errors import NstjaxError, one_line
from nstjax.execute import Observers
from nstjax.progress import ProgressDisplay
from nstjax.sweep import distributed, inflight, inputs, tensorboard
from nstjax.sweep.expand import options_of as expand_options_of
from nstjax.sweep.recorder import Manifest, Recorder, write_reports
from nstjax.sweep.spec import Sweep
from nstjax.sweep.workdir import INFLIGHT, Workdir


@dataclasses.dataclass
class SweepOutcome:
    """What :func:`run_sweep` did.

    Attributes:
        total: runs in the sweep.
        finished_before: runs already finished when this process started.
        computed: ids of the runs this process computed.
        done, failed, pending: the sweep's runs by status when this process finished (as far as
            it knows: process 0 waits for the others, the others do not).
        batch_sizes: the batch size used for each of this process's batches.
    """

    total: int
    finished_before: int
    computed: list[str]
    done: int
    failed: int
    pending: int
    batch_sizes: list[int]


def _plan_batches(
    sweep: Sweep,
    finished: set[str],
    cluster: distributed.Cluster,
    n_devices: int,
    budget_bytes: float,
    batch_size: int | None,
    convolution: str,
    saved: list[tuple[list[str], int]] = (),
) -> list[plan.Batch]:
    """This process's batches: each group's share (distributed.share) less the finished runs,
    cut to fit memory; first the batches in flight ``saved`` (run ids, size), formed as they
    were. Every batch of a group compiles to the group's one program."""
    out = []
    run_mb = sweep.config.sweep.run_memory_mb
    chunk = sweep.config.sweep.save_every or sweep.config.sweep.chunk
    quality = sweep.config.sweep.quality
    options_of = lambda item: dataclasses.replace(
        expand_options_of(item.key.values, chunk), quality=quality
    )
    run_bytes = run_mb * 2**20 if run_mb else None
    for group in plan.group(sweep.items(), options_of, convolution):
        mine = distributed.share(group.items, cluster.process_id, cluster.num_processes)
        pending = [i for i in mine if i.key.id not in finished]
        resumed, pending = inflight.resumed_batches(group, mine, pending, saved, n_devices)
        out += resumed
        if pending:
            out += plan.batches_of(
                group, pending, budget_bytes, n_devices, batch_size, run_bytes=run_bytes, sweep=True
            )
    return out


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """How this process runs its share of a sweep (what it computes is the sweep's config).

    Attributes:
        overwrite: replace a different sweep found in the workdir.
        batch_size: runs per compiled batch (rounded up to a multiple of the devices); ``None``
            sizes batches from memory.
        memory_gb: memory one device may use, overriding what the device reports.
        mesh: a mesh with axis ``"runs"``; ``"auto"`` uses every local device
            (:func:`distributed.local_mesh`); ``None`` one device.
        wait_timeout_s: how long process 0 waits for the other processes' runs.
    """

    overwrite: bool = False
    batch_size: int | None = None
    memory_gb: float | None = None
    mesh: Any = "auto"
    wait_timeout_s: float = 24 * 3600.0


def run_sweep(
    sweep: Sweep,
    workdir: str,
    params,
    settings: RunSettings = RunSettings(),
    *,
    cluster: distributed.Cluster | None = None,
    log: Callable[[str], None] = print,
    stream=None,
) -> SweepOutcome:
    """Runs this process's share of a sweep into ``workdir``, skipping finished runs.

    Process 0 prepares the workdir (refusing a different sweep unless ``settings.overwrite``),
    keeps ``manifest.json`` current, waits for the other processes' runs and writes the reports.
    Every process computes its share of each group of runs
    (:func:`nstjax.sweep.distributed.share`) in batches that fit memory, each batch one call of
    the compiled program, sharded over ``settings.mesh``.

    Args:
        sweep: from :func:`nstjax.sweep.prepare`.
        workdir: the sweep's folder.
        params: VGG parameters (:func:`nstjax.vgg.load_params`; tests pass a tiny random net).
        settings: how this process runs (:class:`RunSettings`).
        cluster: this process among the sweep's processes (:func:`distributed.initialize`);
            ``None``: the only one.
        log: where one-line messages go.
        stream: where the progress bar draws (stderr).

    Returns:
        A :class:`SweepOutcome`.

    Raises:
        NstjaxError: the workdir holds a different sweep or cannot be written.
    """
    cluster = cluster or distributed.Cluster()
    if sweep.config.sweep.tensorboard and cluster.is_leader:
        tensorboard.require()
    work = _prepared_workdir(sweep, workdir, settings.overwrite, cluster)
    mesh = distributed.local_mesh() if isinstance(settings.mesh, str) else settings.mesh
    finished = work.finished(r.id for r in sweep.runs)
    batches = _this_process_batches(sweep, work, finished, cluster, mesh, settings)
    log(_plan_line(sweep, finished, batches, cluster, mesh))
    manifest = Manifest.written(sweep, work) if cluster.is_leader else None
    recorder = Recorder(sweep, work, cluster, manifest)
    saver = inflight.saver_for(sweep, work, log)
    try:
        _run_batches(sweep, params, batches, mesh, Observers(recorder, saver), stream)
    except (KeyboardInterrupt, inflight.UnwrittenRuns) as e:
        _stopped(sweep, work, manifest, recorder, saver, e)
    _say_unwritten(recorder)  # snapshots or reports not written; the runs were
    counts = _finish(sweep, work, manifest, recorder.computed, settings.wait_timeout_s, log)
    return SweepOutcome(
        len(sweep.runs),
        len(finished),
        recorder.computed,
        counts["done"],
        counts["failed"],
        counts["pending"],
        [b.size for b in batches],
    )


def _this_process_batches(sweep, work, finished, cluster, mesh, settings) -> list[plan.Batch]:
    """:func:`_plan_batches` for the devices of ``mesh`` and the memory they have (or
    ``settings.memory_gb``); process 0 first forgets the in-flight batches now finished."""
    n_devices = mesh.size if mesh is not None else 1
    budget = (
        settings.memory_gb * 1e9
        if settings.memory_gb
        else memory.device_memory_bytes() * memory.BUDGET_FRACTION
    )
    convolution = kernels.choose(n_devices)  # once for the whole sweep
    if cluster.is_leader:
        inflight.remove_finished(work.path / INFLIGHT, finished)
    saved = inflight.saved_batches(work.path / INFLIGHT)
    return _plan_batches(
        sweep, finished, cluster, n_devices, budget, settings.batch_size, convolution, saved
    )


def _plan_line(sweep, finished, batches, cluster, mesh) -> str:
    """The line that says what this process is about to compute."""
    processes = cluster.num_processes
    who = f"process {cluster.process_id}/{processes} " if processes > 1 else ""
    n_devices = mesh.size if mesh is not None else 1
    return (
        f"sweep: {len(sweep.runs)} runs, {len(finished)} finished earlier; {who}computing "
        f"{sum(len(b.items) for b in batches)} in {len(batches)} batch(es) on {n_devices} "
        f"device(s) (batch sizes {sorted({b.size for b in batches}) or '-'})"
    )


def _say_unwritten(recorder: Recorder) -> None:
    """One line on stderr per file the recorder could not write."""
    for line in recorder.unwritten:
        print(f"nstjax: sweep: {line}", file=sys.stderr)


def _stopped(sweep, work, manifest, recorder, saver, error: BaseException) -> None:
    """An interruption or a failed write stopped the sweep: the reports of what is finished are
    written, then ``error`` goes on up, saying (in a note or its message) what was kept."""
    _say_unwritten(recorder)
    kept = f"{len(recorder.computed)} run(s) written this time"
    if manifest:
        try:
            manifest.refresh()
            manifest.write()
            write_reports(sweep, work)
            done = sum(v != "pending" for v in manifest.status.values())
            kept += f", {done}/{len(sweep.runs)} finished, reports written to {work.path}"
        except (OSError, NstjaxError) as e:
            kept += f"; the reports could not be written ({one_line(e)})"
    if saver.in_flight():
        kept += f"; {saver.in_flight()}"
    if isinstance(error, KeyboardInterrupt):
        error.add_note(f"sweep: {kept}; rerun the same command to resume")
        raise error
    raise NstjaxError(
        f"sweep: {len(recorder.unwritten)} file(s) could not be written (above): {error}; {kept}"
    ) from error


def _prepared_workdir(sweep: Sweep, workdir: str, overwrite: bool, cluster) -> Workdir:
    """Process 0 prepares (and locks) the workdir; every process learns whether it could."""
    work = Workdir(workdir)
    error = None
    if cluster.is_leader:
        try:
            work.prepare(sweep.record(), overwrite)
        except Exception as e:  # whatever it is, the other processes must hear of it
            error = e
    if not cluster.agree(error is None):
        raise error or NstjaxError(f"--workdir {workdir}: process 0 could not prepare it")
    return work


def _run_batches(sweep, params, batches, mesh, recorder, stream) -> None:
    display = ProgressDisplay(plan.image_steps(batches), "sweep", stream=stream)
    finished = False
    try:
        api.run_plan(
            params,
            batches,
            inputs.Contents(sweep.inputs),
            sweep.inputs.images,
            mesh=mesh,
            observer=Observers(recorder, display),
        )
        finished = True
    except Exception as e:
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        raise NstjaxError(
            "a batch ran out of device memory; pass a smaller --batch-size or --memory-gb "
            "(finished runs are kept)"
        ) from e
    finally:
        display.close(finished)


def _finish(sweep, work, manifest, computed, wait_timeout_s, log) -> dict[str, int]:
    """Process 0 waits for the others' runs and writes the reports; returns the counts by status
    (another process counts only its own runs)."""
    if not manifest:
        counts = {"pending": 0, "done": 0, "failed": 0}
        for run_id in computed:
            counts[(work.read_run(run_id) or {}).get("status", "pending")] += 1
        counts["pending"] = 0
        return counts
    deadline = time.monotonic() + wait_timeout_s
    manifest.refresh()
    if manifest.pending():
        log(f"sweep: waiting for {len(manifest.pending())} run(s) of the other processes")
    while manifest.pending() and time.monotonic() < deadline:
        time.sleep(0.5)
        manifest.refresh()
    try:
        manifest.write()
        write_reports(sweep, work)
    except OSError as e:  # the runs are written: a rerun computes nothing and writes these
        raise NstjaxError(
            f"sweep: the runs are written but the reports are not ({inflight.write_failure(e)}); "
            "rerun the same command to write them"
        ) from e
    pending = manifest.pending()
    if pending:
        shown = ", ".join(pending[:10]) + (" ..." if len(pending) > 10 else "")
        print(
            f"nstjax: sweep: {len(pending)} run(s) unfinished after waiting: {shown}",
            file=sys.stderr,
        )
    counts = {s: sum(v == s for v in manifest.status.values()) for s in ("done", "failed")}
    return {**counts, "pending": len(pending)}
