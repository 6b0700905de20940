"""``nstjax bench``: throughput, MFU and memory of the compiled optimisation step.

One idea per module: :mod:`problem` builds a benchmark batch, :mod:`timing` times a loop warm and
checks it ran what it claims, :mod:`flops` reads the model FLOPs from XLA's cost analysis,
:mod:`peaks` knows (or probes) the device's peak, :mod:`memory` reads memory figures,
:mod:`suite` runs a config's grid and :mod:`report` writes JSON, markdown and a plot.
"""
