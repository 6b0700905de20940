"""Running a prepared sweep into its workdir: this process's share, batch by batch, resumable."""

import dataclasses
import datetime
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from nstjax import api
from nstjax.engine import METRICS
from nstjax.errors import NstjaxError
from nstjax.sweep import distributed, plan, report
from nstjax.sweep.expand import SweepRun, to_api_run
from nstjax.sweep.progress import SweepProgress
from nstjax.sweep.spec import Sweep
from nstjax.sweep.workdir import CONTACT_SHEET, LOSS_CURVES, SUMMARY, Workdir


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


@dataclasses.dataclass
class _Batch:
    group: plan.Group
    runs: list[SweepRun]
    size: int


def _plan_batches(
    sweep: Sweep,
    finished: set[str],
    cluster: distributed.Cluster,
    n_devices: int,
    budget_bytes: float,
    batch_size: int | None,
) -> list[_Batch]:
    out = []
    run_mb = sweep.config.sweep.run_memory_mb
    for group in plan.group_runs(sweep.runs, sweep.output_shape):
        mine = distributed.share(group.runs, cluster.process_id, cluster.num_processes)
        pending = [r for r in mine if r.id not in finished]
        if not pending:
            continue
        s = group.static
        per_run = run_mb * 2**20 or plan.run_bytes(
            group.shape,
            plan.deepest_layer(group.runs),
            dtype=s["dtype"],
            optimizer=s["optimizer"],
            lbfgs_history=s["lbfgs_history"],
            remat=s["remat"],
        )
        size = plan.batch_size(len(pending), per_run, budget_bytes, n_devices, batch_size)
        out.extend(_Batch(group, b, size) for b in plan.batches(pending, size))
    return out


def _history(history: np.ndarray) -> dict[str, list[float]]:
    return {name: [float(v) for v in history[:, i]] for i, name in enumerate(METRICS)}


def _run_batch(
    sweep: Sweep,
    workdir: Workdir,
    params,
    batch: _Batch,
    mesh,
    bar: SweepProgress,
    cluster: distributed.Cluster,
) -> list[str]:
    config = sweep.config
    images = sweep.inputs.images
    size = batch.runs[0].values["size"]
    content_paths = list(dict.fromkeys(r.content for r in batch.runs))
    style_paths = list(dict.fromkeys(r.style for r in batch.runs))
    contents = [sweep.inputs.content_at(p, size) for p in content_paths]
    styles = [images[p] for p in style_paths]
    api_runs = [
        to_api_run(
            r.values,
            content_paths.index(r.content),
            style_paths.index(r.style),
            images.get(r.values["init"]),
        )
        for r in batch.runs
    ]
    static = batch.group.static
    save_every = config.sweep.save_every
    steps = static["steps"]

    def progress(done, steps, metrics):
        bar.update(done, metrics[-1])

    def snapshot(step, indices, pixels):
        if step % save_every == 0 and step < steps:
            for i, img in zip(indices, pixels):
                workdir.write_snapshot(batch.runs[i].id, step, img)

    started = time.perf_counter()
    try:
        results = api.stylize_batch(
            params,
            contents,
            styles,
            api_runs,
            steps=steps,
            optimizer=static["optimizer"],
            pooling=static["pooling"],
            lbfgs_history=static["lbfgs_history"],
            dtype=static["dtype"],
            remat=static["remat"],
            batch_size=batch.size,
            chunk=save_every or min(config.sweep.chunk, steps),
            progress=progress,
            on_snapshot=snapshot if save_every else None,
            mesh=mesh,
            # every batch of the group compiles to the same program, whatever layers it weights
            layers_from=[
                api.Run(
                    content_layers=r.values["content_layers"], style_layers=r.values["style_layers"]
                )
                for r in batch.group.runs
            ],
        )
    except Exception as e:
        if "RESOURCE_EXHAUSTED" not in str(e):
            raise
        raise NstjaxError(
            f"a batch of {batch.size} runs at {batch.group.name} ran out of device memory; "
            "pass a smaller --batch-size or --memory-gb (finished runs are kept)"
        ) from e
    wall = time.perf_counter() - started
    finished_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    for run, result in zip(batch.runs, results):
        record = {
            **run.record(),
            "status": "failed" if result.failed_at is not None else "done",
            "final": result.final,
            "failed_at": result.failed_at,
            "history": _history(result.history),
            "wall_s": round(wall, 3),
            "batch": {"runs": len(batch.runs), "size": batch.size, "group": batch.group.name},
            "process": cluster.process_id,
            "finished": finished_at,
        }
        workdir.write_run(run.id, result.image, record)
    return [r.id for r in batch.runs]


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
    """Writes ``summary.csv``, ``contact_sheet.png`` and ``loss_curves.png`` from the run folders."""
    records = {r.id: workdir.read_run(r.id) for r in sweep.runs}
    report.write_summary(workdir.path / SUMMARY, sweep.expansion, records)
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
    work = Workdir(workdir)
    error = None
    if cluster.is_leader:
        try:
            work.prepare(sweep.record(), overwrite)
        except Exception as e:  # whatever it is, the other processes must hear of it
            error = e
    if not cluster.agree(error is None):
        raise error or NstjaxError(f"--workdir {workdir}: process 0 could not prepare it")

    if isinstance(mesh, str):
        mesh = distributed.local_mesh()
    n_devices = mesh.size if mesh is not None else 1
    if memory_gb:
        budget = memory_gb * 1e9
    else:
        budget = plan.device_memory_bytes() * plan.BUDGET_FRACTION
    finished = work.finished(r.id for r in sweep.runs)
    batches = _plan_batches(sweep, finished, cluster, n_devices, budget, batch_size)
    total = len(sweep.runs)
    mine = sum(len(b.runs) for b in batches)
    who = (
        f"process {cluster.process_id}/{cluster.num_processes} "
        if cluster.num_processes > 1
        else ""
    )
    log(
        f"sweep: {total} runs, {len(finished)} finished earlier; {who}computing {mine} in "
        f"{len(batches)} batch(es) on {n_devices} device(s) "
        f"(batch sizes {sorted({b.size for b in batches}) or '-'})"
    )

    manifest = _Manifest(sweep, work) if cluster.is_leader else None
    if manifest:
        manifest.refresh()
        manifest.write()
    bar = SweepProgress(
        mine, sum(len(b.runs) * b.group.static["steps"] for b in batches), stream=stream
    )
    params = api.prepare_params(params, mesh)  # once for the whole sweep
    computed: list[str] = []
    for i, batch in enumerate(batches, start=1):
        bar.start_batch(i, len(batches), len(batch.runs), batch.group.static["steps"])
        computed += _run_batch(sweep, work, params, batch, mesh, bar, cluster)
        bar.end_batch()
        if manifest:
            manifest.refresh()
            manifest.write()
    bar.close()

    if not manifest:
        status = {"pending": 0, "done": 0, "failed": 0}
        for run_id in computed:
            status[(work.read_run(run_id) or {}).get("status", "pending")] += 1
        return SweepOutcome(
            total,
            len(finished),
            computed,
            status["done"],
            status["failed"],
            0,
            [b.size for b in batches],
        )

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
    return SweepOutcome(
        total,
        len(finished),
        computed,
        counts["done"],
        counts["failed"],
        len(pending),
        [b.size for b in batches],
    )
