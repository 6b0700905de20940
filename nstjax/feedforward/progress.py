"""The training progress display: step, loss terms, images/s and ETA.

A ``rich`` progress bar on a terminal; elsewhere (logs, CI) a plain line every ``interval``
seconds. The rate counts images from the end of the first step on, so compilation is not in it.
"""

import sys
import time

import numpy as np


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


class TrainProgress:
    """Shows how training goes.

    Args:
        start: the step training (re)starts from.
        total: the last step.
        images_per_step: content images per step (the batch size).
        stream: where to write (stderr).
        interval: seconds between plain lines when ``stream`` is not a terminal.
    """

    def __init__(
        self, start: int, total: int, images_per_step: int, stream=None, interval: float = 5.0
    ):
        self.start, self.total, self.images = start, total, images_per_step
        self.stream = stream or sys.stderr
        self.interval = interval
        self.first: tuple[int, float] | None = None  # (step, time) when the first step ended
        self.last_line = 0.0
        self.last_note = ""
        self.rich = None
        if self.stream.isatty():
            try:
                from rich.console import Console
                from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
            except ImportError:
                pass
            else:
                self.rich = Progress(
                    TextColumn("train"),
                    BarColumn(),
                    TextColumn("{task.completed}/{task.total}"),
                    TimeRemainingColumn(),
                    TextColumn("{task.fields[info]}"),
                    console=Console(file=self.stream),
                )
                self.task = self.rich.add_task("train", total=total, completed=start, info="")
                self.rich.start()

    def text(self, step: int, metrics: np.ndarray) -> str:
        """The status line after ``step`` steps with the latest metrics ``[K, 4]``."""
        now = time.perf_counter()
        if self.first is None:
            self.first = (step, now)
        done, since = step - self.first[0], now - self.first[1]
        rate = done * self.images / since if done and since > 0 else float("nan")
        eta = (self.total - step) * since / done if done else float("nan")
        rows = np.asarray(metrics, np.float64)
        finite = rows[np.all(np.isfinite(rows), axis=1)]  # a rejected network's may not be
        loss, content, style, tv = finite.mean(axis=0) if len(finite) else np.full(4, np.nan)
        eta_text = _duration(eta) if np.isfinite(eta) else "?"
        rate_text = f"{rate:.2f}" if np.isfinite(rate) else "?"  # unknown until a second step
        return (
            f"step {step}/{self.total} loss {loss:.4g} (content {content:.4g} style {style:.4g} "
            f"tv {tv:.4g}) {rate_text} img/s eta {eta_text}"
        )

    def update(self, step: int, metrics: np.ndarray, note: str = "") -> None:
        """Reports ``step`` steps done with the latest metrics ``[K, 4]`` (mean over the
        networks whose metrics are finite) and a ``note`` (rejected steps), shown at once when
        it changes."""
        line = self.text(step, metrics) + (f" | {note}" if note else "")
        if self.rich is not None:
            self.rich.update(self.task, completed=step, info=line.split(" ", 2)[2])
            return
        now = time.perf_counter()
        changed, self.last_note = note != self.last_note, note
        if changed or now - self.last_line >= self.interval or step == self.total:
            self.last_line = now
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.rich is not None:
            self.rich.stop()
