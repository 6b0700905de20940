"""What :func:`nstjax.engine.optimize` returns, and the progress it resumes from."""

from typing import Any, NamedTuple

import numpy as np


class Outcome(NamedTuple):
    """What :func:`nstjax.engine.optimize` returns (numpy arrays, leading run axis).

    ``history`` and ``evaluations`` have one row per step the batch ran: ``steps``, or fewer when
    every run stopped earlier (checked between chunks). A run that stopped (failed or converged,
    see :class:`nstjax.engine.State`) keeps its pixels, so its rows after the stop repeat the loss terms of its
    final pixels, and its evaluations there are 0.
    """

    pixels: np.ndarray  # [R, H, W, 3] final images, 0-255 units, not clipped
    history: np.ndarray  # [steps, R, 4] loss terms before each step
    final: np.ndarray  # [R, 4] loss terms of the final images clipped to [0, 255]
    failed_at: np.ndarray  # [R] step at which a run stopped on a non-finite value, -1 if none
    converged_at: np.ndarray  # [R] step at which a run met a convergence tolerance, -1 if none
    evaluations: np.ndarray  # [steps, R] int: loss/gradient evaluations each step made per run


class Start(NamedTuple):
    """A batch's progress, from which :func:`nstjax.engine.optimize` resumes: its state after
    ``state.step`` steps and the ``[state.step, R, len(STEP_COLUMNS)]`` rows those steps
    returned."""

    state: Any  # an nstjax.engine.State
    rows: np.ndarray
