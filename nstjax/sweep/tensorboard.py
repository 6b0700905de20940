"""A sweep's runs as TensorBoard logs (``sweep.tensorboard``), written with tensorboardX.

``DIR/tensorboard/<id>_<label>/`` holds one run: its loss history as scalars per step
(``loss/total``, ``loss/content``, ``loss/style``, ``loss/tv``; the value at step ``i`` is the
loss of the image before step ``i``), its final image (``image``, at the last step), and an
HParams session: every hyperparameter (numbers as numbers, layer lists and other values as their
labels) with the metrics ``quality/<measure>`` and ``final/<term>`` (left out where a run
has no value). Point TensorBoard at ``DIR/tensorboard`` and the HParams dashboard compares the runs.

A run's folder is written once, when its ``run.json`` is there, into a temporary folder renamed
into place, so a reader (or an interrupted sweep) never sees half a run; later batches add the
runs they finish.
"""

import math
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nstjax.engine import METRICS
from nstjax.errors import NstjaxError
from nstjax.sweep.expand import SweepRun, value_label

TERM_TAGS = {
    "loss": "loss/total",
    "content": "loss/content",
    "style": "loss/style",
    "tv": "loss/tv",
}
"""History column -> the scalar tag of its curve."""
IMAGE_TAG = "image"
_TEMPORARY = ".partial-"


def require() -> None:
    """Checks that tensorboardX can be imported.

    Raises:
        NstjaxError: it cannot (naming the package to install).
    """
    try:
        import tensorboardX  # noqa: F401
    except ImportError as e:
        raise NstjaxError(
            "sweep.tensorboard=True needs the tensorboardX package "
            "(pip install 'nstjax[tensorboard]'), or set sweep.tensorboard=False"
        ) from e


def folder_name(run: SweepRun) -> str:
    """A run's log folder: its id and label, with characters other than letters, digits and
    ``._=+,-`` as ``_`` (at most 120 characters)."""
    return re.sub(r"[^A-Za-z0-9._=+,-]", "_", f"{run.id}_{run.label}")[:120]


def hparams(run: SweepRun) -> dict[str, bool | float | str]:
    """A run's hyperparameters as HParams values: the content and style image (their names) and
    every field of the run (bools and numbers as they are, everything else as its label)."""
    out: dict[str, bool | float | str] = {
        "content": value_label(run.content),
        "style": value_label(run.style),
    }
    for name, value in run.values.items():
        if isinstance(value, bool):
            out[name] = value
        elif isinstance(value, (int, float)):
            out[name] = float(value)
        else:
            out[name] = value_label(value)
    return out


def metrics(record: Mapping[str, Any], measures: Sequence[str]) -> dict[str, float]:
    """A run's HParams metrics: ``quality/<measure>`` and ``final/<term>`` (NaN: no value, written as no scalar)."""
    quality, final = record.get("quality") or {}, record.get("final") or {}
    nan = lambda v: math.nan if v is None else float(v)
    out = {f"quality/{m}": nan(quality.get(m)) for m in measures}
    out.update({f"final/{t}": nan(final.get(t)) for t in METRICS})
    return out


def _write_run(folder: Path, run: SweepRun, record: dict, image: Path, measures) -> None:
    from tensorboardX import SummaryWriter
    from tensorboardX.summary import hparams as hparams_summaries

    history = record.get("history") or {}
    steps = max((len(v) for v in history.values()), default=0)
    with SummaryWriter(logdir=str(folder), flush_secs=3600) as writer:
        for term, tag in TERM_TAGS.items():
            for step, value in enumerate(history.get(term, ())):
                if value is not None:
                    writer.add_scalar(tag, value, step)
        if image.exists():
            with Image.open(image) as img:
                pixels = np.asarray(img.convert("RGB"))
            writer.add_image(IMAGE_TAG, pixels, steps, dataformats="HWC")
        writer.add_text("label", run.label, 0)
        # what SummaryWriter.add_hparams writes, in this run's folder rather than a new one
        values = metrics(record, measures)
        for summary in hparams_summaries(hparams(run), values):
            writer.file_writer.add_summary(summary)
        for tag, value in values.items():
            if math.isfinite(value):  # a metric a run lacks is left out of its session
                writer.add_scalar(tag, value, steps)


def write_tensorboard(
    logdir: Path,
    runs: Sequence[SweepRun],
    records: Mapping[str, dict | None],
    image_path,
    measures: Sequence[str] = (),
) -> list[str]:
    """Writes the logs of the finished runs that have none yet.

    Args:
        logdir: ``DIR/tensorboard``.
        runs: the sweep's runs.
        records: run id -> its ``run.json`` record (``None``: not finished, skipped).
        image_path: a run -> its image file.
        measures: the quality measures' names (the HParams metrics).

    Returns:
        The ids of the runs written this time.
    """
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    for stale in logdir.glob(_TEMPORARY + "*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed writer
    written = []
    for run in runs:
        record = records.get(run.id)
        final = logdir / folder_name(run)
        if not record or final.exists():
            continue
        partial = logdir / (_TEMPORARY + final.name)
        _write_run(partial, run, record, Path(image_path(run)), measures)
        partial.rename(final)
        written.append(run.id)
    return written
