"""Progress over a whole sweep: runs finished, the current batch's steps, throughput and an ETA."""

import sys
import time


class SweepProgress:
    """Draws one line on a terminal (redrawn in place), or prints a line per batch otherwise.

    The ETA divides the image-steps left by the rate measured so far in this process (compile
    time included, so it starts pessimistic and improves).

    Args:
        total_runs: runs this process will compute.
        total_work: image-steps this process will compute (sum over its runs of their steps).
        label: printed first.
        stream: where to write (stderr).
        force: draw the in-place bar even when ``stream`` is not a terminal.
        log_every: when not drawing in place, the seconds between lines within a batch.
    """

    def __init__(
        self,
        total_runs: int,
        total_work: int,
        label: str = "sweep",
        stream=None,
        force: bool = False,
        log_every: float = 30.0,
    ):
        self.total_runs, self.total_work, self.label = total_runs, total_work, label
        self.stream = stream or sys.stderr
        self.tty = force or self.stream.isatty()
        self.start = time.perf_counter()
        self.runs_done = 0
        self.work_done = 0
        self.batch = (0, 0, 0, 0)  # index, count, runs, steps
        self.batch_start = self.start
        self.last_line = self.start
        self.log_every = log_every

    def start_batch(self, index: int, count: int, runs: int, steps: int) -> None:
        """A batch of ``runs`` runs of ``steps`` steps starts (batch ``index`` of ``count``)."""
        self.batch = (index, count, runs, steps)
        self.batch_start = time.perf_counter()
        self._draw(0, None)

    def update(self, done_steps: int, metrics=None) -> None:
        """The current batch has done ``done_steps`` steps; ``metrics`` are its latest ``[R, 4]``."""
        self._draw(done_steps, metrics)

    def end_batch(self) -> None:
        """The current batch finished."""
        _, _, runs, steps = self.batch
        self.runs_done += runs
        self.work_done += runs * steps
        if self.tty:
            self._draw(steps, None, finished=True)
        else:
            index, count, _, _ = self.batch
            self.stream.write(
                f"{self.label}: batch {index}/{count} done ({runs} runs, "
                f"{time.perf_counter() - self.batch_start:.1f}s); "
                f"runs {self.runs_done}/{self.total_runs}, {self._eta(self.work_done)}\n"
            )
            self.stream.flush()

    def _eta(self, work: int) -> str:
        elapsed = time.perf_counter() - self.start
        if work <= 0:
            return "eta ?"
        rate = work / elapsed
        return f"{rate:.2f} img-it/s, eta {(self.total_work - work) / rate:.0f}s"

    def _draw(self, done_steps: int, metrics, finished: bool = False) -> None:
        index, count, runs, steps = self.batch
        work = self.work_done + (0 if finished else runs * done_steps)
        if not self.tty:  # a log: a line every log_every seconds within a long batch
            now = time.perf_counter()
            if done_steps and now - self.last_line >= self.log_every:
                self.last_line = now
                self.stream.write(
                    f"{self.label}: batch {index}/{count} step {done_steps}/{steps}; "
                    f"runs {self.runs_done}/{self.total_runs}, {self._eta(work)}\n"
                )
                self.stream.flush()
            return
        width = 20
        filled = int(width * work / max(self.total_work, 1))
        bar = "#" * filled + "-" * (width - filled)
        loss = ""
        if metrics is not None and len(metrics):
            loss = f" loss {float(metrics[:, 0].mean()):.3g}"
        self.stream.write(
            f"\r{self.label} [{bar}] runs {self.runs_done}/{self.total_runs} "
            f"batch {index}/{count} step {done_steps}/{steps}{loss} {self._eta(work)}\033[K"
        )
        self.stream.flush()

    def close(self) -> None:
        """Ends the line."""
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
