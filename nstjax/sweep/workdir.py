"""A sweep's folder: its config, manifest and one folder per run, written so it can always resume.

Layout::

    DIR/config.json          the resolved config and input files (a different sweep is refused)
    DIR/manifest.json        every run: id, label, hyperparameters, status pending/done/failed
    DIR/runs/<id>/image.png  the final image (and step_NNNNN.png snapshots, if asked)
    DIR/runs/<id>/run.json   hyperparameters, final losses, loss history, wall time
    DIR/summary.csv, DIR/contact_sheet.png, DIR/loss_curves.png, DIR/report.html
    DIR/inflight/<batch>/    the last save of a batch in flight (:mod:`nstjax.sweep.inflight`)
    DIR/tensorboard/         TensorBoard logs (sweep.tensorboard)
    DIR/.lock                the lock of the sweep using the folder: its PID and host

Every file is written under a temporary name and renamed (:mod:`nstjax.atomic`). A run is finished
iff its ``run.json`` exists: it is written last, after the image, so a run killed at any point is
simply not finished and runs again; ``run.json`` is the truth, the manifest a summary of it.

One sweep at a time: :meth:`Workdir.prepare` takes an exclusive OS lock (``flock``) on
``DIR/.lock`` before it touches anything, held until the process ends (``kill -9`` included: the
kernel releases it). A second sweep on the folder is refused, naming the holder, instead of
deleting the first one's temporary files and computing its runs again.
"""

import errno
import fcntl
import json
import math
import os
import shutil
import socket
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nstjax import atomic, image
from nstjax.errors import NstjaxError

CONFIG = "config.json"
MANIFEST = "manifest.json"
RUNS = "runs"
SUMMARY = "summary.csv"
CONTACT_SHEET = "contact_sheet.png"
LOSS_CURVES = "loss_curves.png"
INFLIGHT = "inflight"
REPORT_HTML = "report.html"
TENSORBOARD = "tensorboard"
SEARCH = "search"
"""A search's folder: its Optuna study, trials and history (:mod:`nstjax.sweep.search`)."""
OURS = (
    CONFIG,
    MANIFEST,
    RUNS,
    SUMMARY,
    CONTACT_SHEET,
    LOSS_CURVES,
    INFLIGHT,
    REPORT_HTML,
    TENSORBOARD,
    SEARCH,
)
LOCK = ".lock"
"""The lock file; not among :data:`OURS`, so ``--overwrite`` never deletes a held lock."""

_HELD: dict[Path, int] = {}
"""The workdirs this process has locked (resolved path -> the lock file's descriptor)."""

IGNORED_FOR_RESUME = (
    "sweep.contact_sheet",
    "sweep.chunk",
    "sweep.checkpoint_every",
    "sweep.checkpoint_minutes",
    "sweep.tensorboard",
    "sweep.quality",
    "search.trials",
)
"""Config fields that only change how results are shown, when a batch in flight is saved, what later
runs add to their records (quality measures) or how long a search goes on: a rerun may change them."""


def to_json(value: Any) -> str:
    """Strict JSON (non-finite floats become ``null``), indented, keys in order."""
    return json.dumps(_finite(value), indent=1, allow_nan=False) + "\n"


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def _flatten(value, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def differences(old: dict, new: dict, ignore: Sequence[str] = ()) -> list[str]:
    """``"field: old -> new"`` for every leaf that differs between two nested dicts."""
    a, b = _flatten(old), _flatten(new)
    keep = lambda k: not any(k == p or k.startswith(p + ".") for p in ignore)
    return [
        f"{k}: {a.get(k, '(absent)')!r} -> {b.get(k, '(absent)')!r}"
        for k in sorted(set(a) | set(b))
        if keep(k) and a.get(k) != b.get(k)
    ]


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open descriptor ``fd`` is the file now at ``path``."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _holder(lock_path: Path, wait_s: float = 1.0) -> str:
    """``"PID N on HOST"`` from a held lock file (it may take the holder a moment to write it)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            holder = json.loads(lock_path.read_text())
            return f"PID {int(holder['pid'])} on {holder['host']}"
        except (OSError, ValueError, KeyError, TypeError):
            if time.monotonic() > deadline:
                return f"PID unknown: {lock_path} does not say"
            time.sleep(0.05)


def _fields(record: dict) -> dict:
    """A config.json record as one nested dict: the config's fields (one added to the config
    since the record was written holds its default), and ``inputs``."""
    from nstjax.sweep.config import default_config

    config = _with_defaults(record.get("config", {}), default_config().to_dict())
    return {**config, "inputs": record.get("inputs", {})}


def _with_defaults(fields: dict, defaults: dict) -> dict:
    """``fields`` with every key of ``defaults`` it lacks (nested groups merged)."""
    merged = dict(fields)
    for key, default in defaults.items():
        if key not in merged:
            merged[key] = default
        elif isinstance(default, dict) and default and isinstance(merged[key], dict):
            merged[key] = _with_defaults(merged[key], default)
    return merged


class Workdir:
    """The folder of one sweep.

    Args:
        path: the folder (created if missing).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def run_dir(self, run_id: str) -> Path:
        """The folder of one run."""
        return self.path / RUNS / run_id

    def run_json(self, run_id: str) -> Path:
        """The record of a finished run."""
        return self.run_dir(run_id) / "run.json"

    def prepare(self, record: dict[str, Any], overwrite: bool = False) -> bool:
        """Makes the folder ready for the sweep described by ``record``; call on one process.

        First the folder is locked for this process (:meth:`lock`), so nothing below can
        disturb another sweep. A new or empty folder is initialised. A folder holding the same
        sweep is kept (its finished runs are skipped later) and stale temporary files of a killed
        process are removed. A folder holding a different sweep is refused unless ``overwrite``,
        which deletes the sweep's files (and nothing else). A folder that is not a sweep's is
        refused before anything is written into it.

        Args:
            record: the resolved config and inputs (JSON-able), stored as ``config.json``.
            overwrite: replace a different sweep instead of refusing.

        Returns:
            Whether an earlier sweep's results are being resumed.

        Raises:
            NstjaxError: another sweep holds the folder, it holds a different sweep, is not a
                sweep folder, or cannot be written.
        """
        config_path = self.path / CONFIG
        if self.path.exists() and not self.path.is_dir():
            raise NstjaxError(f"--workdir {self.path}: exists and is not a folder")
        if not config_path.exists():
            self._refuse_strangers()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise NstjaxError(f"--workdir {self.path}: cannot write ({e.strerror or e})") from e
        self.lock()
        resuming = self._match(record, overwrite)
        try:
            self.remove_temporaries()
            atomic.write_text(config_path, to_json(record))
        except OSError as e:
            raise NstjaxError(f"--workdir {self.path}: cannot write ({e.strerror or e})") from e
        return resuming

    def _refuse_strangers(self) -> None:
        """Raises unless the folder holds nothing but a sweep's files (or does not exist)."""
        if not self.path.is_dir():
            return
        strangers = sorted(p.name for p in self.path.iterdir() if p.name not in (*OURS, LOCK))
        if strangers:
            raise NstjaxError(
                f"--workdir {self.path}: not empty and not a sweep folder (no {CONFIG}; "
                f"holds {', '.join(strangers[:5])}); choose an empty or new folder"
            )

    def _match(self, record: dict[str, Any], overwrite: bool) -> bool:
        """Compares the folder's sweep with ``record``; whether it is the same one (to resume)."""
        config_path = self.path / CONFIG
        if config_path.exists():
            try:
                old = json.loads(config_path.read_text())
            except (OSError, ValueError) as e:
                raise NstjaxError(f"--workdir {self.path}: cannot read {CONFIG} ({e})") from e
            changed = differences(
                _fields(old), _fields(json.loads(to_json(record))), IGNORED_FOR_RESUME
            )
            if changed and not overwrite:
                shown = "; ".join(changed[:6]) + (
                    f"; and {len(changed) - 6} more" if len(changed) > 6 else ""
                )
                raise NstjaxError(
                    f"--workdir {self.path} holds a different sweep ({shown}); pass --overwrite "
                    "to replace its results, or choose another --workdir"
                )
            if changed:
                self._remove_ours()
            return not changed
        self._refuse_strangers()
        if any(p.name != LOCK for p in self.path.iterdir()):
            if not overwrite:
                raise NstjaxError(
                    f"--workdir {self.path}: holds sweep results but no {CONFIG}, so they cannot "
                    "be matched to this config; pass --overwrite to replace them"
                )
            self._remove_ours()
        return False

    def lock(self) -> None:
        """Takes the exclusive lock on the folder (``DIR/.lock``) for the life of this process.

        The lock is an ``flock`` on ``DIR/.lock``, into which this process's PID and host are
        written; the kernel releases it when the process ends, however it ends (``kill -9``
        included). Taking it again in the same process does nothing; :meth:`unlock` releases it
        early. A child forked while it is held shares it. Of a multi-host sweep only process 0
        takes it (in :meth:`prepare`); the other processes write nothing into the folder until
        process 0 has prepared it (:meth:`nstjax.sweep.distributed.Cluster.agree`), so the lock
        of process 0 covers them. Across hosts it needs a filesystem whose ``flock`` is shared
        between hosts (NFS is: Linux maps ``flock`` onto NFS byte-range locks).

        Raises:
            NstjaxError: another process holds the lock (naming its PID and host), or the folder
                cannot be locked.
        """
        key, lock_path = self.path.resolve(), self.path / LOCK
        if key in _HELD and _same_file(_HELD[key], lock_path):
            return
        self.unlock()  # a lock on a file since deleted (the folder was removed) guards nothing
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as e:
            raise NstjaxError(f"--workdir {self.path}: cannot write ({e.strerror or e})") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise NstjaxError(
                    f"--workdir {self.path}: cannot lock {lock_path} ({e.strerror or e}); "
                    "choose a --workdir on a filesystem that supports file locks"
                ) from e
            raise NstjaxError(
                f"--workdir {self.path}: in use by another sweep ({_holder(lock_path)}); "
                "wait for it or choose another --workdir"
            ) from None
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (holder + "\n").encode(), 0)
        except OSError as e:
            os.close(fd)
            raise NstjaxError(f"--workdir {self.path}: cannot write ({e.strerror or e})") from e
        _HELD[key] = fd

    def unlock(self) -> None:
        """Releases the lock taken by :meth:`lock`, if this process holds it."""
        fd = _HELD.pop(self.path.resolve(), None)
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the flock

    def _remove_ours(self) -> None:
        for name in OURS:
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)

    def temporaries(self) -> list[Path]:
        """Temporary files left by a killed writer (:func:`nstjax.atomic.atomic_path`'s names)."""
        if not self.path.is_dir():
            return []
        return [p for p in self.path.rglob(".*") if p.is_file() and ".tmp" in p.name]

    def remove_temporaries(self) -> None:
        """Deletes :meth:`temporaries`; only safe while no process writes into the folder."""
        for path in self.temporaries():
            path.unlink(missing_ok=True)

    def read_run(self, run_id: str) -> dict[str, Any] | None:
        """A finished run's record, or ``None`` if it has not finished.

        A ``run.json`` that is not a JSON object (empty or cut short: what a machine that lost
        power can leave of a write it had not yet flushed) counts as not finished, so that the
        run is computed again rather than the sweep stopping on it.
        """
        try:
            record = json.loads(self.run_json(run_id).read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def has_run(self, run_id: str) -> bool:
        """Whether the run has finished (done or failed): its ``run.json`` reads."""
        return self.read_run(run_id) is not None

    def finished(self, run_ids: Iterable[str]) -> set[str]:
        """The ids among ``run_ids`` whose run has finished (done or failed)."""
        return {i for i in run_ids if self.has_run(i)}

    def write_snapshot(self, run_id: str, step: int, pixels: np.ndarray) -> None:
        """Saves an intermediate image as ``runs/<id>/step_NNNNN.png``."""
        image.save_image(self.run_dir(run_id) / f"step_{step:05d}.png", pixels)

    def write_run(self, run_id: str, pixels: np.ndarray, record: dict[str, Any]) -> None:
        """Saves a finished run: the image first, then ``run.json`` (which marks it finished)."""
        image.save_image(self.run_dir(run_id) / "image.png", pixels)
        atomic.write_text(self.run_json(run_id), to_json(record))

    def write_manifest(self, entries: list[dict[str, Any]]) -> None:
        """Writes ``manifest.json``: every run's description and status."""
        counts = {s: sum(e["status"] == s for e in entries) for s in ("pending", "done", "failed")}
        atomic.write_text(self.path / MANIFEST, to_json({"counts": counts, "runs": entries}))
