"""The sweep's progress line: runs, the batch's steps, throughput and an ETA."""

import io

import numpy as np

from nstjax.sweep.progress import SweepProgress


def test_terminal_bar_counts_runs_and_steps():
    stream = io.StringIO()
    bar = SweepProgress(total_runs=4, total_work=40, stream=stream, force=True)
    bar.start_batch(1, 2, runs=3, steps=10)
    bar.update(5, np.full((3, 4), 2.0))
    bar.end_batch()
    bar.start_batch(2, 2, runs=1, steps=10)
    bar.end_batch()
    bar.close()
    frames = stream.getvalue().split("\r")
    assert "runs 0/4 batch 1/2 step 5/10 loss 2 " in frames[2]
    assert "[#######-------------]" in frames[2]  # 15 of 40 image-steps
    assert "runs 4/4" in frames[-1] and "[####################]" in frames[-1]
    assert "eta 0s" in frames[-1] and stream.getvalue().endswith("\n")


def test_log_lines_when_not_a_terminal():
    stream = io.StringIO()
    bar = SweepProgress(total_runs=2, total_work=20, stream=stream, log_every=0.0)
    bar.start_batch(1, 1, runs=2, steps=10)
    bar.update(4)
    bar.end_batch()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("sweep: batch 1/1 step 4/10; runs 0/2")
    assert lines[1].startswith("sweep: batch 1/1 done (2 runs") and "runs 2/2" in lines[1]
    assert "\r" not in stream.getvalue()
