"""Sweeps: a config of hyperparameter grids and image pairs run as a few compiled, batched programs.

:func:`prepare` turns a config into checked runs (every input problem reported at once, before
anything compiles); :func:`run_sweep` runs them into a resumable workdir. The ``nstjax sweep``
command is a thin layer over these two; see ``docs/sweeps.md``.
"""

from nstjax.sweep.config import default_config
from nstjax.sweep.recorder import write_reports
from nstjax.sweep.run import RunSettings, SweepOutcome, run_sweep
from nstjax.sweep.spec import Sweep, prepare

__all__ = [
    "RunSettings",
    "Sweep",
    "SweepOutcome",
    "default_config",
    "prepare",
    "run_sweep",
    "write_reports",
]
