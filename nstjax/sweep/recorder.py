"""Recording a running sweep in its workdir: each run's files as its batch finishes, process 0's
manifest of every run's status, and the reports written from the run folders."""

import datetime
import time

import numpy as np

from nstjax.engine import METRICS
from nstjax.errors import NstjaxError
from nstjax.execute import Observer
from nstjax.sweep import html, inflight, report, tensorboard, trials
from nstjax.sweep.spec import Sweep
from nstjax.sweep.workdir import (
    CONTACT_SHEET,
    LOSS_CURVES,
    REPORT_HTML,
    SUMMARY,
    TENSORBOARD,
    Workdir,
)


def _history(history: np.ndarray) -> dict[str, list[float]]:
    return {name: [float(v) for v in history[:, i]] for i, name in enumerate(METRICS)}


class Recorder(Observer):
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
                try:
                    self.workdir.write_snapshot(item.key.id, steps, img)
                except (OSError, NstjaxError) as e:  # disk full, permissions: the runs go on
                    failure = inflight.write_failure(e)
                    self.unwritten.append(f"run {item.key.id}: snapshot at step {steps}: {failure}")

    def batch_finished(self, batch, results):
        wall = time.perf_counter() - self.started
        finished_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        group = batch.group
        for result in results:
            run = result.key
            if self.workdir.has_run(run.id):  # written before the batch was resumed
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


class Manifest:
    """Process 0's view of every run's status, refreshed from the run.json files."""

    def __init__(self, sweep: Sweep, workdir: Workdir):
        self.sweep, self.workdir = sweep, workdir
        self.status: dict[str, str] = {r.id: "pending" for r in sweep.runs}

    @classmethod
    def written(cls, sweep: Sweep, workdir: Workdir) -> "Manifest":
        """The manifest as the run folders say now, written."""
        manifest = cls(sweep, workdir)
        manifest.refresh()
        manifest.write()
        return manifest

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
