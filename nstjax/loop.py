"""The host side of an optimisation: how a batch advances between host synchronisations.

:mod:`nstjax.engine` compiles the step of a batch (``train_step``, or ``train_chunk``'s
``lax.scan`` of steps); this module calls it: which form runs on which backend
(:func:`default_loop`), ``n`` steps without waiting for them (:func:`advance`), and the loop
over chunks with its progress callbacks and early stop (:func:`run_chunks`). Nothing here is
traced.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nstjax.outcome import Start

CHUNK = 50
"""Steps between host synchronisations (progress, snapshots, the stop test) of a call or sweep
unless told otherwise (on accelerators, the steps of one compiled ``lax.scan`` call)."""

LOOPS = ("python", "scan")


def default_loop() -> str:
    """``"python"`` on CPU (measured faster there, docs/benchmarks.md), ``"scan"`` elsewhere."""
    return "python" if jax.default_backend() == "cpu" else "scan"


class Loop(NamedTuple):
    """How a batch advances: one compiled step from Python, or ``length`` steps per compiled call.

    ``step(params, state, hyper, targets) -> (state, rows)`` and, for the scan form,
    ``chunk(params, state, hyper, targets, n_valid) -> (state, rows)``; the jitted functions of
    :mod:`nstjax.engine` (:func:`nstjax.engine.loop_for`) or their ahead-of-time compiled
    executables (the benchmark).
    """

    step: Callable
    chunk: Callable | None = None
    length: int = 1


def advance(runner: Loop, params, state, hyper, targets, n: int):
    """``n`` steps (at most ``runner.length`` with the scan form); returns the new state and the
    ``[n, R, len(STEP_COLUMNS)]`` rows, without waiting for them (no host synchronisation)."""
    if runner.chunk is not None:
        state, rows = runner.chunk(params, state, hyper, targets, jnp.int32(n))
        return state, rows[:n]
    rows = []
    for _ in range(n):
        state, row = runner.step(params, state, hyper, targets)
        rows.append(row)
    return state, jnp.stack(rows)


class Hooks(NamedTuple):
    """What the host calls after each chunk (each may be ``None``).

    Attributes:
        on_chunk: ``(steps done, state, metrics) -> stop``, with the chunk's ``[n, R, 4]`` loss
            terms (:data:`nstjax.engine.METRICS`, host arrays); it may return a ``[R]`` bool mask
            of runs to stop there, each alone (as if it had converged, but with
            ``converged_at`` left at -1).
        on_state: called next with the progress as a :class:`~nstjax.outcome.Start`; its state
            is donated by the next chunk, so copy what you keep.
    """

    on_chunk: Callable[[int, Any, np.ndarray], np.ndarray | None] | None = None
    on_state: Callable[[Start], None] | None = None


def run_chunks(
    advance_by: Callable[[Any, int], tuple[Any, jax.Array]],
    state,
    history: list[np.ndarray],
    steps: int,
    chunk: int,
    hooks: Hooks,
) -> tuple[Any, list[np.ndarray]]:
    """Advances ``state`` chunk by chunk until ``steps`` steps are done or every run stopped.

    Args:
        advance_by: ``(state, n) -> (state, rows)``, ``n`` steps (:func:`advance`).
        state: an :class:`nstjax.engine.State` (its ``active`` runs are tested after each chunk).
        history: the host rows of the steps done so far, one array per chunk (appended to).
        steps: the step budget, counting the steps already done.
        chunk: steps between host synchronisations.
        hooks: called after each chunk; ``on_chunk`` sees the chunk's rows
            (``[n, R, len(STEP_COLUMNS)]``), of which :func:`nstjax.engine.optimize` passes on
            the loss terms.

    Returns:
        The state and ``history``.
    """
    done = sum(len(rows) for rows in history)
    while done < steps and np.any(np.asarray(state.active)):  # until every run stopped
        n = min(chunk, steps - done)
        state, rows = advance_by(state, n)
        rows = np.asarray(rows)
        done += n
        history.append(rows)
        if hooks.on_chunk is not None:
            stop = hooks.on_chunk(done, state, rows)
            if stop is not None:
                state = state._replace(active=state.active & ~jnp.asarray(stop))
        if hooks.on_state is not None:
            hooks.on_state(Start(state, np.concatenate(history)))
    return state, history
