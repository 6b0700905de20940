"""Benchmark grid for ``nstjax bench``.

    nstjax bench --config configs/bench.py --output bench-out            # the full grid (accelerators)
    nstjax bench --config configs/bench.py:cpu --output bench-out        # what fits a 2-core CPU
    nstjax bench --config configs/bench.py:quick --output /tmp/bench     # CI-sized smoke run
    nstjax bench --config configs/bench.py --config.sizes='(512,)' --config.batch_sizes='(16,)'

Every case is sizes x batch_sizes x precisions x remat x optimizers; see docs/benchmarks.md.
"""

import ml_collections

from nstjax.optim import LBFGS_HISTORY


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The full grid, or a variant: ``quick`` (32 px, batch 1 and 2) or ``cpu``."""
    c = ml_collections.ConfigDict()
    c.sizes = (128, 256, 512)  # square images, pixels per side
    c.batch_sizes = (1, 4, 8, 32)  # runs per compiled step
    c.precisions = ("fp32", "default", "bf16")  # fp32 = "highest"; default = backend's (TF32)
    c.remat = (False, True)  # jax.checkpoint per VGG block
    c.optimizers = ("adam", "lbfgs")
    c.lbfgs_history = LBFGS_HISTORY
    c.iterations = 20  # per timed run (rounded to whole chunks with the scan loop)
    c.repeats = 3  # timed runs; the median is reported
    c.loop = ""  # "python" | "scan"; "" = the engine's default for the backend
    c.chunk = 10  # steps per compiled call with the scan loop
    c.convolution = ""  # "xla" | "flipped" | "onednn"; "" = nstjax.kernels.choose()
    c.probe_size = 2048  # CPU matmul probe (the CPU's peak for MFU)
    c.weights = ""  # VGG-19 .h5/.npz; "" = $NSTJAX_WEIGHTS, the cache, or a download

    c.largest = ml_collections.ConfigDict()
    c.largest.enabled = True  # accelerators only (n/a on CPU)
    c.largest.sizes = (1024, 1536, 2048, 3072, 4096)
    c.largest.precision = "bf16"
    c.largest.remat = True
    c.largest.optimizer = "adam"

    c.time_to_result = ml_collections.ConfigDict()
    c.time_to_result.enabled = True  # `nstjax stylize` twice with a fresh compilation cache
    c.time_to_result.size = 512
    c.time_to_result.steps = 500

    if arg == "quick":
        c.sizes = (32,)
        c.batch_sizes = (1, 2)
        c.precisions = ("fp32", "bf16")
        c.remat = (False,)
        c.optimizers = ("adam",)
        c.iterations = 2
        c.chunk = 2
        c.probe_size = 256
        c.largest.enabled = False
        c.time_to_result.enabled = False
    elif arg == "cpu":
        c.sizes = (128, 256)
        c.batch_sizes = (1, 8)
        c.precisions = ("default", "bf16")  # fp32 "highest" is the default on CPU
        c.remat = (False,)
        c.iterations = 3
        c.probe_size = 1024
        c.time_to_result.size = 128
        c.time_to_result.steps = 20
    elif arg:
        raise ValueError(f"unknown variant {arg!r} (quick, cpu)")
    return c
