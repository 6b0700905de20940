"""The one progress display of nstjax: a rich progress bar on a terminal, timed lines elsewhere.

It counts *image-steps* (one generated image advanced one step), so a call of many batches, a
sweep or a multi-scale schedule is one bar sized from the plan. It shows the step of the batch
at hand, the mean loss terms of its last step, image-iterations per second and an ETA; while a
batch compiles (its first chunk of a program not seen before) it says so. When the stream is not
a terminal (CI, logs, ``nohup``) it prints one short line every ``every_s`` seconds instead.
"""

import sys
import time

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from nstjax.engine import METRICS


def losses_text(metrics: np.ndarray | None) -> str:
    """``"loss 12.3 (content 1.2 style 3.4 tv 5.6)"`` from ``[R, 4]`` loss terms (their mean)."""
    if metrics is None or not len(metrics):
        return ""
    values = dict(zip(METRICS, np.asarray(metrics, np.float64).mean(axis=0)))
    terms = " ".join(f"{k} {values[k]:.3g}" for k in METRICS[1:])
    return f"loss {values['loss']:.3g} ({terms})"


class ProgressDisplay:
    """Progress of a whole call, sweep or schedule.

    Args:
        total: image-steps to run in all (:func:`nstjax.batch.plan.image_steps`).
        label: what is running, e.g. ``"stylize"``.
        stream: where to write (stderr).
        every_s: seconds between lines when ``stream`` is not a terminal (0: never).
        force_terminal: draw the bar even when ``stream`` is not a terminal (tests).
    """

    def __init__(
        self,
        total: int,
        label: str = "nstjax",
        stream=None,
        every_s: float = 10.0,
        force_terminal: bool | None = None,
    ):
        self.total, self.label = max(int(total), 0), label
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.done = 0
        self.started = time.perf_counter()
        self._batch_done = 0  # image-steps of the current batch already counted
        self._last_line = self.started
        self._status = ""
        self._steps = ""
        self._seen_programs: set = set()
        tty = self.stream.isatty() if force_terminal is None else force_terminal
        self._bar = None
        if tty:
            console = Console(file=self.stream, force_terminal=True)
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TextColumn("{task.fields[steps]} {task.fields[rate]} {task.fields[status]}"),
                TimeRemainingColumn(),
                console=console,
                transient=False,
            )
            self._task = self._bar.add_task(
                label, total=max(self.total, 1), steps="", rate="", status=""
            )
            self._bar.start()

    def rate(self) -> float:
        """Image-iterations per second so far (compilation included)."""
        return self.done / max(time.perf_counter() - self.started, 1e-9)

    def eta_s(self) -> float:
        return (self.total - self.done) / max(self.rate(), 1e-9)

    def start_batch(self, description: str, program, runs: int, steps: int) -> None:
        """A batch of ``runs`` runs and ``steps`` steps begins; ``program`` tells whether it
        compiles first."""
        self._runs, self._steps_total, self._batch_done = runs, steps, 0
        compiling = program not in self._seen_programs
        self._seen_programs.add(program)
        self._status = f"compiling {description}" if compiling else description
        self._steps = f"step 0/{steps}"
        self._refresh(force=compiling)

    def update(self, steps_done: int, metrics: np.ndarray | None = None) -> None:
        """The current batch has run ``steps_done`` steps; ``metrics`` ``[R, 4]`` of the last."""
        work = steps_done * self._runs
        self.done += work - self._batch_done
        self._batch_done = work
        self._steps = f"step {steps_done}/{self._steps_total}"
        self._status = losses_text(metrics)
        self._refresh()

    # The hooks of nstjax.api.Observer: the display follows a plan's batches by itself.
    def batch_started(self, batch) -> None:
        self.start_batch(batch.group.name, batch.group.program, len(batch.items), batch.steps)

    def chunk_done(self, batch, steps, metrics, images) -> None:
        self.update(steps, metrics[-1] if len(metrics) else None)

    def batch_finished(self, batch, results) -> None:
        pass

    def _rate_text(self) -> str:
        """The rate so far, or ``?`` before any image-step is done (nothing to measure)."""
        return f"{self.rate():.2f} img-it/s" if self.done else "? img-it/s"

    def _refresh(self, force: bool = False) -> None:
        rate = self._rate_text()
        if self._bar is not None:
            self._bar.update(
                self._task, completed=self.done, steps=self._steps, rate=rate, status=self._status
            )
            return
        now = time.perf_counter()
        if force or (self.every_s and now - self._last_line >= self.every_s):
            self._last_line = now
            eta = f"eta {self.eta_s():.0f}s" if self.done else "eta ?"
            self._line(f"{self._steps} {self._status} {rate} {eta}")

    def _line(self, text: str) -> None:
        self.stream.write(f"{self.label}: {self.done}/{self.total} image-steps, {text}\n")
        self.stream.flush()

    def close(self, finished: bool = True) -> None:
        """Stops the bar (a last line when not on a terminal: "done in", or "stopped after"
        when the work did not finish)."""
        if self._bar is not None:
            self._bar.stop()
        else:
            elapsed = time.perf_counter() - self.started
            how = "done in" if finished else "stopped after"
            if not self.total:
                self._line("nothing left to run")
            else:
                self._line(f"{how} {elapsed:.1f}s ({self._rate_text()})")
