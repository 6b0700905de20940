"""A sweep's batches in flight: their state saved every N steps or M minutes, resumed from there.

A batch in flight is saved under ``DIR/inflight/<name>/``: ``batch.json`` (its run ids in order
and its padded size, the batch's identity) and ``state/<step>/``, an orbax checkpoint of the
whole engine state (images, optimiser states, L-BFGS history and line-search evaluation, stop
flags, step) and the rows of the steps done so far. orbax writes each step to a temporary folder
and renames it when complete, keeping the last one, so a process killed at any moment (``kill -9``
included) leaves the previous save whole. A resumed sweep forms the same batch again (same runs,
order and size, :func:`saved_batches`) and continues it from the saved step; the compiled step is
the same program on the same arrays, so the images equal an uninterrupted sweep's. The folder is
removed once every run of the batch is written.
"""

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from nstjax import atomic, engine
from nstjax.batch import plan
from nstjax.errors import one_line
from nstjax.execute import Observer
from nstjax.sweep.workdir import INFLIGHT

BATCH = "batch.json"

logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every save at INFO


def batch_ids(batch: plan.Batch) -> list[str]:
    """The ids of a sweep batch's real runs, in order."""
    return [item.key.id for item in batch.items]


def batch_name(ids: list[str], size: int) -> str:
    """The folder name of a batch: its first and last run and a digest of all of them."""
    digest = hashlib.sha1(json.dumps([ids, size]).encode()).hexdigest()[:10]
    return f"{ids[0]}-{ids[-1]}-{digest}"


def saved_batches(root: Path) -> list[tuple[list[str], int]]:
    """``(run ids, size)`` of every batch saved under ``root`` (``DIR/inflight``) with a state."""
    out = []
    for folder in sorted(root.glob("*/")) if root.is_dir() else []:
        try:
            saved = json.loads((folder / BATCH).read_text())
            ids, size = [str(i) for i in saved["ids"]], int(saved["size"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if folder.name != batch_name(ids, size):  # not where that batch saves: not its save
            continue
        if _saved_step(folder):
            out.append((ids, size))
    return out


def remove_finished(root: Path, finished: set[str]) -> None:
    """Removes the saves under ``root`` of batches whose runs are all written (a process stopped
    between writing the last run and removing the save)."""
    for ids, size in saved_batches(root):
        if set(ids) <= finished:
            shutil.rmtree(root / batch_name(ids, size), ignore_errors=True)


def _saved_step(folder: Path) -> int:
    """The step of the complete save in a batch's ``folder`` (0: none). orbax renames a save to
    its step only once it is whole, so this is what a rerun resumes from."""
    return max((int(p.name) for p in (folder / "state").glob("*") if p.name.isdigit()), default=0)


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or one_line(error)


def _leaves(tree) -> dict[str, np.ndarray]:
    return {f"{i:04d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}


class Checkpoints:
    """The in-flight checkpoints under ``root`` (``DIR/inflight``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, batch: plan.Batch) -> Path:
        return self.root / batch_name(batch_ids(batch), batch.size)

    def saved_step(self, batch: plan.Batch) -> int:
        """The step of ``batch``'s complete save on disk (0: none)."""
        return _saved_step(self.folder(batch))

    def _manager(self, batch: plan.Batch) -> ocp.CheckpointManager:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=1,
            enable_async_checkpointing=False,
            create=True,
            cleanup_tmp_directories=True,  # a save cut short by a kill
        )
        return ocp.CheckpointManager(self.folder(batch).absolute() / "state", options=options)

    def save(self, batch: plan.Batch, progress: engine.Start) -> None:
        """Saves ``progress`` of ``batch``; returns once it is on disk (raises ``OSError``)."""
        folder = self.folder(batch)
        if not (folder / BATCH).is_file():
            record = {"ids": batch_ids(batch), "size": batch.size, "group": batch.group.name}
            atomic.write_text(folder / BATCH, json.dumps(record) + "\n")
        tree = {"leaves": _leaves(progress.state), "rows": np.asarray(progress.rows)}
        manager = self._manager(batch)
        try:
            step = int(progress.state.step)
            if manager.latest_step() != step:  # a batch resumed at its end is saved already
                manager.save(step, args=ocp.args.StandardSave(tree), force=True)
                manager.wait_until_finished()
        finally:
            manager.close()

    def load(self, batch: plan.Batch, like: engine.State) -> tuple[engine.Start | None, str]:
        """The saved progress of ``batch`` (``None`` if none fits) and why not, if not."""
        folder = self.folder(batch)
        try:
            saved = json.loads((folder / BATCH).read_text())
        except (OSError, ValueError):
            return None, ""
        if saved.get("ids") != batch_ids(batch) or saved.get("size") != batch.size:
            return None, f"{folder} was saved for other runs"
        manager = self._manager(batch)
        try:
            step = manager.latest_step()
            if step is None:
                return None, ""
            tree = manager.restore(step, args=ocp.args.StandardRestore())
        except Exception as e:  # a damaged save is not resumed, whatever orbax raises
            return None, f"{folder} cannot be read ({type(e).__name__})"
        finally:
            manager.close()
        expected = jax.tree.leaves(like)
        leaves = [tree["leaves"].get(f"{i:04d}") for i in range(len(expected))]
        fits = len(tree["leaves"]) == len(expected) and all(
            x is not None and x.shape == e.shape and x.dtype == e.dtype
            for x, e in zip(leaves, expected)
        )
        state = jax.tree.unflatten(jax.tree.structure(like), leaves) if fits else None
        rows = (int(state.step), batch.size, len(engine.STEP_COLUMNS)) if fits else None
        if not fits or tree["rows"].shape != rows:
            return None, f"{folder} does not match the batch's state"
        return engine.Start(state, tree["rows"]), ""

    def remove(self, batch: plan.Batch) -> None:
        shutil.rmtree(self.folder(batch), ignore_errors=True)


class UnwrittenRuns(Exception):
    """Some run of a batch could not be written; the message says where its result was kept."""


@dataclasses.dataclass
class Policy:
    """When a batch in flight is saved: every ``steps`` steps or ``minutes`` minutes (0: off),
    whichever comes first, checked after each chunk."""

    steps: int = 0
    minutes: float = 0.0


class Saver(Observer):
    """Saves each batch in flight by :class:`Policy`, resumes it, and removes its save once every
    run of the batch is written (``unwritten(batch)``: the ids of its runs not written).

    If some run could not be written, the batch's final state is saved instead (so a rerun
    writes it without computing it again), or where that fails too the unwritten images go to
    ``rescue`` (another filesystem, by default the system's temporary folder); :attr:`kept`
    says where.
    """

    def __init__(
        self, root: Path, policy: Policy, unwritten, log=print, rescue: Path | None = None
    ):
        self.checkpoints, self.policy, self.unwritten = Checkpoints(root), policy, unwritten
        self.log, self.rescue = log, rescue
        self.last: engine.Start | None = None  # the progress of the batch at hand
        self.current: plan.Batch | None = None  # the batch in flight
        self.resumed: dict[str, int] = {}  # batch folder -> the step it resumed from
        self.kept = ""

    def resume_from(self, batch, like):
        start, why = self.checkpoints.load(batch, like)
        if why:
            self.log(f"sweep: not resuming from {why}; the batch starts from step 0")
            self.checkpoints.remove(batch)
        if start is not None:
            step = int(start.state.step)
            self.resumed[self.checkpoints.folder(batch).name] = step
            self.log(f"sweep: batch {self.checkpoints.folder(batch).name} resumes at step {step}")
        self._since = (int(start.state.step) if start else 0, time.monotonic())
        self.last, self.current = start, batch
        return start

    def state_done(self, batch, progress):
        self.last = progress
        step = int(progress.state.step)
        if step >= batch.steps or not np.any(np.asarray(progress.state.active)):
            return  # finished: batch_finished writes it
        saved_step, saved_time = self._since
        every, minutes = self.policy.steps, self.policy.minutes
        due = (every and step - saved_step >= every) or (
            minutes and time.monotonic() - saved_time >= minutes * 60
        )
        if due:
            try:
                self.checkpoints.save(batch, progress)
            except Exception as e:  # the batch goes on; its end is written (or kept) as usual
                self.log(f"sweep: could not save the batch in flight ({_reason(e)})")
            self._since = (step, time.monotonic())

    def in_flight(self) -> str:
        """What is kept of the batch in flight, if any (after an interruption): read from disk,
        since the interruption may come between a save's completion and any note of it."""
        if self.current is None:
            return ""
        runs, steps = len(self.current.items), self.current.steps
        saved = self.checkpoints.saved_step(self.current)
        if not saved:
            return f"the batch in flight ({runs} runs) had no save yet and restarts at step 0"
        return (
            f"the batch in flight ({runs} runs) was saved at step {saved} of {steps} "
            f"in {self.checkpoints.folder(self.current)}"
        )

    def batch_finished(self, batch, results):
        self.current = None
        unwritten = self.unwritten(batch)
        if not unwritten:
            self.checkpoints.remove(batch)
            return
        try:
            self.checkpoints.save(batch, self.last)
            self.kept = f"kept in {self.checkpoints.folder(batch)}; a rerun writes them"
        except Exception as e:  # whatever orbax raises on a full or read-only disk
            reason = _reason(e)
        else:
            raise UnwrittenRuns(self.kept)
        rescued = self._rescue([r for r in results if r.key.id in unwritten])
        self.kept = f"the batch's state could not be saved ({reason}); " + (
            f"their images are in {rescued}; a rerun computes them again"
            if rescued
            else "a rerun computes them again"
        )
        raise UnwrittenRuns(self.kept)

    def _rescue(self, results) -> Path | None:
        """Writes ``results``' images into :attr:`rescue` (``None`` if that fails too)."""
        from nstjax import image
        from nstjax.errors import NstjaxError

        if self.rescue is None:
            return None
        try:
            for result in results:
                image.save_image(self.rescue / f"{result.key.id}.png", result.image)
        except (OSError, NstjaxError):
            return None
        return self.rescue


def resumed_batches(group, mine, pending, saved, n_devices) -> tuple[list[plan.Batch], list]:
    """The batches of ``group`` saved in flight with a run still pending, formed again (same
    runs, order and size: runs of it already written are computed again, not written), and the
    pending runs left."""
    by_id = {item.key.id: item for item in mine}
    left = {item.key.id for item in pending}
    batches = []
    for ids, size in saved:
        if all(i in by_id for i in ids) and left & set(ids) and size % n_devices == 0:
            batches.append(plan.Batch(group, [by_id[i] for i in ids], size))
            left -= set(ids)
    return batches, [item for item in pending if item.key.id in left]


def write_failure(error: Exception) -> str:
    """``"'PATH': cannot write (REASON)"`` for a failed write (an OSError or save_image's)."""
    if isinstance(error, OSError) and error.filename:
        return f"'{error.filename}': cannot write ({error.strerror or one_line(error)})"
    return one_line(error)


def saver_for(sweep, work, log) -> Saver:
    """The :class:`Saver` of a sweep (:class:`nstjax.sweep.spec.Sweep`) into its workdir
    (:class:`nstjax.sweep.workdir.Workdir`): ``DIR/inflight``, as ``sweep.checkpoint_*`` say."""
    s = sweep.config.sweep
    policy = Policy(int(s.checkpoint_every), float(s.checkpoint_minutes))
    unwritten = lambda batch: [i for i in batch_ids(batch) if not work.has_run(i)]
    rescue = Path(tempfile.gettempdir()) / f"nstjax-unwritten-{work.path.resolve().name}"
    return Saver(work.path / INFLIGHT, policy, unwritten, log, rescue)
