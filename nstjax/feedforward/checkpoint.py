"""Checkpoints of a training run with orbax-checkpoint, and its config beside them.

A model folder holds ``config.json`` (the :class:`~nstjax.feedforward.config.TrainConfig`),
``content.json`` (the content images trained on: names and sizes, in order) and
``checkpoints/<step>/`` written by an ``orbax.checkpoint.CheckpointManager``: each step is
written to a temporary folder and renamed when complete (orbax's atomic commit), so a process
killed at any moment leaves the previous checkpoints intact; the last ``keep`` are kept. A
checkpoint holds the K networks' :class:`~nstjax.feedforward.step.TrainState`, the loss
history so far and the data iterator's state (grain's orbax handler: one JSON file per process,
``data/process_<i>-of-<n>.json``), so restoring step ``s`` and going on gives what an
uninterrupted run gives (:mod:`nstjax.feedforward.data`).
"""

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp

from nstjax import atomic
from nstjax.errors import NstjaxError
from nstjax.feedforward.config import TrainConfig, load

CHECKPOINTS = "checkpoints"
CONFIG = "config.json"
CONTENT = "content.json"
# Fields that may change between a run and its resumption (they do not change the result).
RESUMABLE_CHANGES = ("steps", "save_every", "keep", "sample_every", "weights", "content_dir")

logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every save at INFO


def write_config(model_dir: Path, config: TrainConfig, write: bool = True) -> None:
    """Writes ``config.json``, refusing a folder that holds a different run's checkpoints.

    Args:
        model_dir: the model folder.
        config: the run.
        write: write it (``False``: only check; the processes of a multi-process run other
            than process 0).

    Raises:
        NstjaxError: ``model_dir`` holds checkpoints of a run whose config differs in a field
            that changes the result.
    """
    path = model_dir / CONFIG
    if path.is_file() and (model_dir / CHECKPOINTS).is_dir():
        # through TrainConfig: fields added since the old run was written take their defaults
        old = json.loads(load(model_dir).to_json())
        new = json.loads(config.to_json())
        changed = sorted(
            k
            for k in set(old) | set(new)
            if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES
            if not (k == "styles" and _same_files(old[k], new[k]))
        )
        if changed:
            raise NstjaxError(
                f"--output '{model_dir}': holds a run with different {', '.join(changed)}; "
                "use another folder to start a new run"
            )
    if write:
        try:
            atomic.write_text(path, config.to_json() + "\n")
        except OSError as e:
            raise NstjaxError(
                f"--output '{model_dir}': cannot write {CONFIG} ({e.strerror})"
            ) from e


def check_content(model_dir: Path, files: list[Path], content_dir: str, write: bool) -> None:
    """Refuses to resume a run on other content images than it was trained on; ``write``: records
    these (``content.json``).

    ``--content-dir`` may change between a run and its resumption (the same images moved), but
    the data iterator's saved position indexes the image list, so other images would silently
    change what the rest of the run trains on. The images are compared by name and size, in
    order; a run from before ``content.json`` existed is taken as it is.

    Raises:
        NstjaxError: the folder holds checkpoints of a run on other images, or cannot be written.
    """
    listing = [[p.name, p.stat().st_size] for p in files]
    path = model_dir / CONTENT
    if path.is_file() and (model_dir / CHECKPOINTS).is_dir():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None  # unreadable: cannot tell, as for a run from before the file existed
        if old is not None and old != listing:
            then, now = {tuple(e) for e in old}, {tuple(e) for e in listing}
            changed = [e[0] for e in old if tuple(e) not in now]
            changed += [e[0] for e in listing if tuple(e) not in then]
            what = f"{changed[0]!r} differs" if changed else "the same images in another order"
            raise NstjaxError(
                f"--content-dir '{content_dir}': not the images the run in '{model_dir}' was "
                f"trained on ({len(old)} image(s) then, {len(listing)} now; {what}); resume with "
                "those images, or use another --output to start a new run"
            )
    if write:
        try:
            atomic.write_text(path, json.dumps(listing) + "\n")
        except OSError as e:
            raise NstjaxError(
                f"--output '{model_dir}': cannot write {CONTENT} ({e.strerror})"
            ) from e


def _same_files(old: list[str], new: list[str]) -> bool:
    """Whether two lists of style paths name the same images: the same files (however the
    paths are spelt) or files of the same content."""
    return len(old) == len(new) and all(_same_file(a, b) for a, b in zip(old, new))


def _same_file(old: str, new: str) -> bool:
    a, b = Path(old), Path(new)
    if a.resolve() == b.resolve():
        return True
    try:
        return _digest(a) == _digest(b)
    except OSError:  # the old file is gone or unreadable: cannot tell, so not the same
        return False


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Checkpoints:
    """The checkpoints of one model folder.

    Args:
        model_dir: the model folder.
        keep: most recent checkpoints kept (``None``: all).
        read_only: for inference: never writes or deletes.
    """

    def __init__(self, model_dir: str | Path, keep: int | None = None, read_only: bool = False):
        self.model_dir = Path(model_dir)
        absl = logging.getLogger("absl")
        level = absl.level
        if read_only:  # orbax warns that a read-only manager saves nothing: that is the point
            absl.setLevel(logging.ERROR)
        try:
            options = ocp.CheckpointManagerOptions(
                max_to_keep=keep,
                enable_async_checkpointing=False,
                create=not read_only,
                read_only=read_only,
            )
            self.manager = ocp.CheckpointManager(
                Path(model_dir).absolute() / CHECKPOINTS,
                options=options,
                item_handlers={
                    "state": ocp.StandardCheckpointHandler(),
                    "history": ocp.StandardCheckpointHandler(),
                    "data": grain.checkpoint.CheckpointHandler(),
                },
            )
        finally:
            absl.setLevel(level)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(
        self,
        step: int,
        state: Any,
        history: np.ndarray,
        rejected: np.ndarray,
        data: grain.DatasetIterator | None = None,
    ) -> None:
        """Writes step ``step`` (steps done) atomically; returns when it is on disk.

        Args:
            step: steps done.
            state: the networks' state.
            history: ``[steps, K, 4]`` loss terms so far.
            rejected: ``[steps, K]`` bool: the steps rejected as non-finite, per network.
            data: the data iterator (its state after ``step`` batches), if any.
        """
        items = {} if data is None else {"data": grain.checkpoint.CheckpointSave(data)}
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_as_dict(state)),
                history=ocp.args.StandardSave({"history": history, "rejected": rejected}),
                **items,
            ),
            force=True,
        )
        self.manager.wait_until_finished()

    def shapes(self, step: int) -> dict[str, Any]:
        """The saved state's leaf shapes (nested dicts of tuples), read from the metadata."""
        tree = self.manager.item_metadata(step)["state"].tree
        return jax.tree.map(lambda m: tuple(m.shape), tree, is_leaf=lambda m: hasattr(m, "shape"))

    def restore(
        self, step: int, like: Any, data: grain.DatasetIterator | None = None
    ) -> tuple[Any, np.ndarray, np.ndarray]:
        """The state (shaped as ``like``, a pytree of arrays or ShapeDtypeStructs), the history
        and the rejected-step flags. A field of ``like`` that the checkpoint lacks (one added to
        the state since it was written) keeps ``like``'s value (zeros if ``like`` is abstract).
        ``data`` (a data iterator), if given, is set to the saved position.

        Raises:
            NstjaxError: ``data`` is given and the checkpoint holds no data state for this
                process (written before the data state was saved, or by another number of
                processes).
        """
        items = {}
        if data is not None:
            self._check_data_state(step)
            items["data"] = grain.checkpoint.CheckpointRestore(data)
        saved = set(self.manager.item_metadata(step)["state"].tree)
        fields = _as_dict(like)
        abstract = {
            k: jax.tree.map(ocp.utils.to_shape_dtype_struct, v)
            for k, v in fields.items()
            if k in saved
        }
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract),
                history=ocp.args.StandardRestore(),
                **items,
            ),
        )
        missing = {
            k: jax.tree.map(lambda x: jax.numpy.zeros(x.shape, x.dtype), v)
            if isinstance(v, jax.ShapeDtypeStruct)
            else v
            for k, v in fields.items()
            if k not in saved
        }
        values = {**restored.state, **missing}
        state = type(like)(**values) if _is_namedtuple(like) else values
        history = np.asarray(restored.history["history"])
        rejected = restored.history.get("rejected")
        rejected = np.zeros(history.shape[:2], bool) if rejected is None else np.asarray(rejected)
        return state, history, rejected

    def _check_data_state(self, step: int) -> None:
        index, count = jax.process_index(), jax.process_count()
        name = f"process_{index}-of-{count}.json"
        if not (Path(self.manager.directory) / str(step) / "data" / name).is_file():
            raise NstjaxError(
                f"--output '{self.model_dir}': checkpoint {step} holds no data-loader state for "
                f"process {index} of {count} (saved by an older nstjax or another number of "
                "processes); it cannot resume exactly, use another folder to start a new run"
            )

    def close(self) -> None:
        self.manager.close()


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _as_dict(state: Any) -> Any:
    return state._asdict() if _is_namedtuple(state) else state


def resume_note(model_dir: str | Path) -> str:
    """What a rerun of an interrupted training resumes from: the latest complete checkpoint on
    disk (orbax lists a step only once its save is whole), as one line."""
    folder = Path(model_dir)
    step = None
    if (folder / CHECKPOINTS).is_dir():
        checkpoints = Checkpoints(folder, read_only=True)
        try:
            step = checkpoints.latest_step()
        finally:
            checkpoints.close()
    if step is None:
        return f"train: no checkpoint in {folder} yet; a rerun starts at step 0"
    return (
        f"train: the last checkpoint in {folder} is step {step}; rerun the same command to "
        "resume from it"
    )
