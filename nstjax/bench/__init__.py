"""``nstjax bench``: throughput, MFU and memory of the compiled optimisation step.

One idea per module: :mod:`problem` builds a benchmark batch, :mod:`timing` times a loop warm and
checks it ran what it claims, :mod:`flops` reads the model FLOPs from XLA's cost analysis,
:mod:`peaks` knows the nominal and probes the measured peak, :mod:`mfu` states MFU against
both, :mod:`bf16_speed` measures whether bf16 is faster here, :mod:`memory` reads memory figures,
:mod:`suite` runs a config's grid and :mod:`report` writes JSON, markdown and a plot.
"""
