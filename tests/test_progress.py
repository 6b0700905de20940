"""The one progress display: image-steps from the plan, loss terms, img-it/s, ETA, compile line."""

import io

import numpy as np

from nstjax.progress import ProgressDisplay, losses_text


class _Batch:
    """What the display reads of a planned batch (nstjax.batch.plan.Batch)."""

    def __init__(self, runs, steps, program):
        self.items, self.steps = [None] * runs, steps
        self.group = type("G", (), {"name": f"16x16 adam {steps} steps", "program": program})()


def test_loss_text_is_the_mean_over_runs():
    metrics = np.array([[10.0, 1.0, 2.0, 3.0], [30.0, 3.0, 4.0, 5.0]])
    assert losses_text(metrics) == "loss 20 (content 2 style 3 tv 4)"


def test_lines_when_not_a_terminal_count_image_steps_and_say_when_compiling():
    stream = io.StringIO()
    display = ProgressDisplay(total=2 * 10 + 1 * 10, label="stylize", stream=stream, every_s=1e-9)
    first, again = _Batch(2, 10, "program A"), _Batch(1, 10, "program A")
    display.batch_started(first)
    display.chunk_done(first, 5, np.full((5, 2, 4), 2.0), None)
    display.chunk_done(first, 10, np.full((5, 2, 4), 1.0), None)
    display.batch_started(again)  # the same program: no compile
    display.chunk_done(again, 10, np.full((10, 1, 4), 1.0), None)
    display.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0].startswith("stylize: 0/30 image-steps, step 0/10 compiling 16x16 adam")
    assert lines[1].startswith("stylize: 10/30 image-steps, step 5/10 loss 2 (content 2")
    assert "img-it/s eta" in lines[1]
    assert lines[2].startswith("stylize: 20/30 image-steps, step 10/10")
    assert "compiling" not in lines[3] and lines[3].startswith("stylize: 20/30 image-steps")
    assert lines[4].startswith("stylize: 30/30 image-steps")
    assert lines[-1].startswith("stylize: 30/30 image-steps, done in")


def test_quiet_between_lines():
    stream = io.StringIO()
    display = ProgressDisplay(total=100, stream=stream, every_s=3600.0)
    batch = _Batch(1, 100, "p")
    display.batch_started(batch)  # compiling: always said
    for step in range(1, 100):
        display.chunk_done(batch, step, np.ones((1, 1, 4)), None)
    assert len(stream.getvalue().splitlines()) == 1


def test_a_bar_on_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    stream = io.StringIO()
    display = ProgressDisplay(total=20, label="sweep", stream=stream, force_terminal=True)
    batch = _Batch(2, 10, "p")
    display.batch_started(batch)
    display.chunk_done(batch, 10, np.ones((10, 2, 4)), None)
    display.close()
    out = stream.getvalue()
    assert "sweep" in out and "20/20" in out and "step 10/10" in out and "img-it/s" in out
