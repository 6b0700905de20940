"""Running a prepared sweep into its workdir: this process's share, batch by batch, resumable."""

import dataclasses
import datetime
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from nstjax import api, kernels
from nstjax.batch import memory, plan
from nstjax.engine import METRICS
from nstjax.errors import NstjaxError, one_line
from nstjax.execute import Observer, Observers
from nstjax.progress import ProgressDisplay
from nstjax.sweep import distributed, html, inflight, report, tensorboard, trials
from nstjax.sweep.expand import options_of as expand_options_of
from nstjax.sweep.spec import Sweep
from nstjax.sweep.workdir import (
    CONTACT_SHEET,
    INFLIGHT,
    LOSS_CURVES,
    REPORT_HTML,
    SUMMARY,
    TENSORBOARD,
    Workdir,
)


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


class _Contents(Mapping):
    """Content images by ``(path, size)``, resized on first use (a run's ``content`` key)."""

    def __init__(self, inputs):
        self.inputs, self.cache = inputs, {}

    def __getitem__(self, key):
        if key not in self.cache:
            self.cache[key] = self.inputs.content_at(*key)
        return self.cache[key]

    def __iter__(self):
        return iter(self.cache)

    def __len__(self):
        return len(self.cache)


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


def _history(history: np.ndarray) -> dict[str, list[float]]:
    return {name: [float(v) for v in history[:, i]] for i, name in enumerate(METRICS)}


class _Recorder(Observer):
    """Writes each batch's snapshots and results into the workdir as the plan runs."""

    def __init__(self, sweep, workdir, cluster, manifest):
        self.sweep, self.workdir, self.cluster, self.manifest = sweep, workdir, cluster, manifest
        self.computed: list[str] = []
        self.unwritten: list[str] = []  # one line per run whose files could not be written

    def batch_started(self, batch):
        self.started = time.perf_counter()

    def chunk_done(self, batch, steps, metrics, images):
        every = self.sweep.config.sweep.save_every
        if every and steps % every == 0 and steps < batch.steps:
            for item, img in zip(batch.items, images()):
                self.workdir.write_snapshot(item.key.id, steps, img)

    def batch_finished(self, batch, results):
        wall = time.perf_counter() - self.started
        finished_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        group = batch.group
        for result in results:
            run = result.key
            if self.workdir.run_json(run.id).exists():  # written before the batch was resumed
                continue
            record = {
                **run.record(),
                "status": "failed" if result.failed_at is not None else "done",
                "final": result.final,
                "failed_at": result.failed_at,
                "converged_at": result.converged_at,
                "evaluations": result.evaluations,
                "history": _history(result.history),
                **({"quality": result.quality} if result.quality is not None else {}),
                "wall_s": round(wall, 3),
                "batch": {"runs": len(batch.items), "size": batch.size, "group": group.name},
                "process": self.cluster.process_id,
                "finished": finished_at,
            }
            try:
                self.workdir.write_run(run.id, result.image, record)
            except (OSError, NstjaxError) as e:  # disk full, permissions: keep going
                self.unwritten.append(f"run {run.id}: {inflight.write_failure(e)}")
                continue
            self.computed.append(run.id)
        if self.manifest:
            self.manifest.refresh()
            try:
                self.manifest.write()
                write_reports(self.sweep, self.workdir)
            except OSError as e:  # rewritten after the next batch, or by a rerun
                self.unwritten.append(inflight.write_failure(e))


class _Manifest:
    """Process 0's view of every run's status, refreshed from the run.json files."""

    def __init__(self, sweep: Sweep, workdir: Workdir):
        self.sweep, self.workdir = sweep, workdir
        self.status: dict[str, str] = {r.id: "pending" for r in sweep.runs}

    def refresh(self) -> None:
        for run_id, status in self.status.items():
            if status == "pending":
                record = self.workdir.read_run(run_id)
                if record is not None:
                    self.status[run_id] = record.get("status", "done")

    def write(self) -> None:
        self.workdir.write_manifest(
            [{**r.record(), "status": self.status[r.id]} for r in self.sweep.runs]
        )

    def pending(self) -> list[str]:
        return [i for i, s in self.status.items() if s == "pending"]


def write_reports(sweep: Sweep, workdir: Workdir) -> None:
    """Writes the reports from the run folders: ``summary.csv``, ``contact_sheet.png``,
    ``loss_curves.png``, ``report.html`` (with a search's history when ``trials.json`` is
    there) and, with ``sweep.tensorboard``, the logs of the runs finished since the last call.

    Unfinished runs show as pending, so it can be called at any moment: process 0 calls it
    after every batch and at the end, and when a sweep is interrupted.
    """
    records = {r.id: workdir.read_run(r.id) for r in sweep.runs}
    measures = report.quality_measures(records)
    report.write_summary(workdir.path / SUMMARY, sweep.expansion, records, list(measures))
    sheet = sweep.config.sweep.contact_sheet

    def image_path(run):
        return workdir.run_dir(run.id) / "image.png" if records.get(run.id) else None

    report.write_contact_sheet(
        workdir.path / CONTACT_SHEET,
        sweep.expansion,
        image_path,
        sheet.rows,
        sheet.cols,
        sheet.cell,
    )
    report.write_loss_curves(workdir.path / LOSS_CURVES, sweep.runs, records)
    history = trials.read(workdir.path)
    html.write_html(workdir.path / REPORT_HTML, sweep.expansion, records, measures, image_path,
                    history, title=workdir.path.resolve().name)  # fmt: skip
    if sweep.config.sweep.tensorboard:
        tensorboard.write_tensorboard(
            workdir.path / TENSORBOARD, sweep.runs, records, image_path, list(measures)
        )


def run_sweep(
    sweep: Sweep,
    workdir: str,
    params,
    *,
    overwrite: bool = False,
    batch_size: int | None = None,
    memory_gb: float | None = None,
    cluster: distributed.Cluster | None = None,
    mesh: Any = "auto",
    wait_timeout_s: float = 24 * 3600.0,
    log: Callable[[str], None] = print,
    stream=None,
) -> SweepOutcome:
    """Runs this process's share of a sweep into ``workdir``, skipping finished runs.

    Process 0 prepares the workdir (refusing a different sweep unless ``overwrite``), keeps
    ``manifest.json`` current, waits for the other processes' runs and writes the reports. Every
    process computes its share of each group of runs (:func:`nstjax.sweep.distributed.share`) in
    batches that fit memory, each batch one call of the compiled program, sharded over ``mesh``.

    Args:
        sweep: from :func:`nstjax.sweep.prepare`.
        workdir: the sweep's folder.
        params: VGG parameters (:func:`nstjax.vgg.load_params`; tests pass a tiny random net).
        overwrite: replace a different sweep found in ``workdir``.
        batch_size: runs per compiled batch (rounded up to a multiple of the devices); ``None``
            sizes batches from memory.
        memory_gb: memory one device may use, overriding what the device reports.
        cluster: this process among the sweep's processes (:func:`distributed.initialize`);
            ``None``: the only one.
        mesh: a mesh with axis ``"runs"``; ``"auto"`` uses every local device
            (:func:`distributed.local_mesh`); ``None`` one device.
        wait_timeout_s: how long process 0 waits for the other processes' runs.
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
    work = _prepared_workdir(sweep, workdir, overwrite, cluster)
    if isinstance(mesh, str):
        mesh = distributed.local_mesh()
    n_devices = mesh.size if mesh is not None else 1
    budget = memory_gb * 1e9 if memory_gb else memory.device_memory_bytes() * memory.BUDGET_FRACTION
    finished = work.finished(r.id for r in sweep.runs)
    convolution = kernels.choose(n_devices)  # once for the whole sweep
    if cluster.is_leader:
        inflight.remove_finished(work.path / INFLIGHT, finished)
    saved = inflight.saved_batches(work.path / INFLIGHT)
    batches = _plan_batches(
        sweep, finished, cluster, n_devices, budget, batch_size, convolution, saved
    )
    processes = cluster.num_processes
    who = f"process {cluster.process_id}/{processes} " if processes > 1 else ""
    log(
        f"sweep: {len(sweep.runs)} runs, {len(finished)} finished earlier; {who}computing "
        f"{sum(len(b.items) for b in batches)} in {len(batches)} batch(es) on {n_devices} "
        f"device(s) (batch sizes {sorted({b.size for b in batches}) or '-'})"
    )
    manifest = _Manifest(sweep, work) if cluster.is_leader else None
    if manifest:
        manifest.refresh()
        manifest.write()
    recorder = _Recorder(sweep, work, cluster, manifest)
    saver = inflight.saver_for(sweep, work, log)
    try:
        _run_batches(sweep, params, batches, mesh, Observers(recorder, saver), stream)
    except (KeyboardInterrupt, inflight.UnwrittenRuns) as e:
        _stopped(sweep, work, manifest, recorder, saver, e)
    counts = _finish(sweep, work, manifest, recorder.computed, wait_timeout_s, log)
    return SweepOutcome(
        len(sweep.runs),
        len(finished),
        recorder.computed,
        counts["done"],
        counts["failed"],
        counts["pending"],
        [b.size for b in batches],
    )


def _stopped(sweep, work, manifest, recorder, saver, error: BaseException) -> None:
    """An interruption or a failed write stopped the sweep: the reports of what is finished are
    written, then ``error`` goes on up, saying (in a note or its message) what was kept."""
    for line in recorder.unwritten:
        print(f"nstjax: sweep: {line}", file=sys.stderr)
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
            _Contents(sweep.inputs),
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
    manifest.write()
    write_reports(sweep, work)
    pending = manifest.pending()
    if pending:
        shown = ", ".join(pending[:10]) + (" ..." if len(pending) > 10 else "")
        print(
            f"nstjax: sweep: {len(pending)} run(s) unfinished after waiting: {shown}",
            file=sys.stderr,
        )
    counts = {s: sum(v == s for v in manifest.status.values()) for s in ("done", "failed")}
    return {**counts, "pending": len(pending)}
