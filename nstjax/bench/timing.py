"""Warm timing of a loop that advances a state: compile apart, median of several runs, checked.

The rules (``../shared/docs/performance.md``): the compile (the first call) is timed separately
and excluded; each timed run ends with ``jax.block_until_ready`` before the clock is read, since
JAX dispatches asynchronously; at least 3 timed runs, of which the median is reported; and the
state's own step counter must show that each run did the iterations it claims, so a loop that
silently skipped work (a short chunk, a frozen run) cannot look fast.
"""

import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jax

State = TypeVar("State")


class IterationMismatch(RuntimeError):
    """A timed run advanced the step counter by a different amount than it claimed."""


@dataclasses.dataclass(frozen=True)
class Timing:
    """The timing of ``iterations`` per run, ``len(run_s)`` runs.

    Attributes:
        first_call_s: the first (compiling) call of ``warmup`` iterations, or the compile alone
            when the caller compiled ahead of time and passed ``compile_s``.
        compile_s: the compile time (given, or the first call minus ``warmup`` warm iterations).
        iterations: iterations per timed run.
        run_s: wall time of each timed run.
    """

    first_call_s: float
    compile_s: float
    iterations: int
    run_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        """Median wall time of one timed run."""
        return statistics.median(self.run_s)

    @property
    def per_iteration_s(self) -> float:
        """Median seconds per iteration."""
        return self.median_s / self.iterations

    def spread(self) -> float:
        """(max - min) / median of the runs: how noisy the measurement was."""
        return (max(self.run_s) - min(self.run_s)) / self.median_s


def time_loop(
    advance: Callable[[Any, int], Any],
    state: Any,
    *,
    iterations: int,
    repeats: int = 3,
    warmup: int = 1,
    step_of: Callable[[Any], int],
    compile_s: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[Timing, Any]:
    """Times ``advance(state, iterations)`` warm, ``repeats`` times.

    Args:
        advance: runs ``n`` iterations from a state and returns the new state (it may return
            before the device is done; the clock is read after ``jax.block_until_ready``).
        state: the initial state (it may be donated by ``advance``: only the returned one is used).
        iterations: iterations per timed run.
        repeats: timed runs (at least 3).
        warmup: iterations of the first, untimed call (compiles the program).
        step_of: reads the step counter from a state (e.g. ``lambda s: int(s.step)``).
        compile_s: the compile time if the caller compiled ahead of time.
        clock: the clock (a test can pass a fake one).

    Returns:
        The :class:`Timing` and the final state.

    Raises:
        ValueError: fewer than 3 repeats or no iterations.
        IterationMismatch: a run did not advance the step counter by ``iterations``.
    """
    if repeats < 3:
        raise ValueError(f"repeats must be >= 3 (a median of at least 3 runs), got {repeats}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    first_call_s = 0.0
    if warmup:
        before = step_of(state)
        start = clock()
        state = jax.block_until_ready(advance(state, warmup))
        first_call_s = clock() - start
        _check(step_of(state) - before, warmup, "warm-up")
    runs = []
    for _ in range(repeats):
        before = step_of(state)
        start = clock()
        state = jax.block_until_ready(advance(state, iterations))
        runs.append(clock() - start)
        _check(step_of(state) - before, iterations, "timed run")
    per_iteration = statistics.median(runs) / iterations
    if compile_s is None:
        compile_s = max(first_call_s - warmup * per_iteration, 0.0)
    timing = Timing(
        first_call_s=first_call_s if warmup else compile_s,
        compile_s=compile_s,
        iterations=iterations,
        run_s=tuple(runs),
    )
    return timing, state


def _check(done: int, claimed: int, what: str) -> None:
    if done != claimed:
        raise IterationMismatch(f"{what}: the step counter advanced by {done}, expected {claimed}")
