"""A one-line text progress bar for long optimisations (stderr, redrawn in place)."""

import sys
import time


class ProgressBar:
    """Shows steps done, the mean losses of the last step, image-iterations per second and an ETA.

    Args:
        total: steps to run in all (over every batch).
        images: generated images advanced per step, for the img-it/s figure.
        label: printed before the bar.
        stream: where to draw; nothing is drawn when it is not a terminal unless ``force``.
    """

    def __init__(self, total: int, images: int, label: str = "", stream=None, force: bool = False):
        self.total, self.images, self.label = total, images, label
        self.stream = stream or sys.stderr
        self.enabled = force or self.stream.isatty()
        self.start = time.perf_counter()
        self.done = 0

    def update(self, done: int, metrics=None) -> None:
        """Redraws the bar with ``done`` steps finished and the latest ``[R, 4]`` loss terms."""
        self.done = done
        if not self.enabled:
            return
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = done * self.images / elapsed
        eta = (self.total - done) * elapsed / max(done, 1)
        width = 24
        filled = int(width * done / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        losses = ""
        if metrics is not None and len(metrics):
            loss, content, style, tv = (float(v) for v in metrics.mean(axis=0))
            losses = f" loss {loss:.3g} (content {content:.3g} style {style:.3g} tv {tv:.3g})"
        self.stream.write(
            f"\r{self.label}[{bar}] {done}/{self.total}{losses} {rate:.2f} img-it/s eta {eta:.0f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
