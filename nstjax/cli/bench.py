"""``nstjax bench``: throughput, MFU and memory of the compiled step over a config's grid.

    nstjax bench --config configs/bench.py:quick --output /tmp/bench

Writes ``bench.json`` (every figure), ``bench.md`` (a table) and ``bench.png`` (throughput against
batch size) into the output folder. The grid lives in the config file; ``--config.FIELD=VALUE``
changes one field.
"""

import argparse
import sys
from pathlib import Path

from nstjax.errors import NstjaxError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="benchmark the compiled optimisation step",
        description="Image-iterations per second, MFU and memory over a grid of cases.",
    )
    p.add_argument("--config", required=True, help="configs/bench.py[:quick|:cpu]")
    p.add_argument("--output", required=True, help="folder for bench.json, bench.md, bench.png")
    p.add_argument("--weights", default=None, help="VGG-19 weights (.h5 or .npz)")
    p.set_defaults(func=main)


def _check(config) -> None:
    from nstjax.bench.peaks import PRECISIONS
    from nstjax.optim import OPTIMIZERS

    for field in ("sizes", "batch_sizes", "precisions", "remat", "optimizers"):
        if not config[field]:
            raise NstjaxError(f"--config.{field}: empty")
    for field in ("sizes", "batch_sizes"):
        bad = [v for v in config[field] if not (isinstance(v, int) and v > 0)]
        if bad:
            raise NstjaxError(f"--config.{field}: must be positive integers, got {bad}")
    for field, valid in (("precisions", PRECISIONS), ("optimizers", OPTIMIZERS)):
        bad = [v for v in config[field] if v not in valid]
        if bad:
            raise NstjaxError(f"--config.{field}: unknown {bad}; valid: {', '.join(valid)}")
    if config.loop not in ("", "python", "scan"):
        raise NstjaxError(f"--config.loop: must be '', 'python' or 'scan', got {config.loop!r}")
    if config.repeats < 3:
        raise NstjaxError(f"--config.repeats: at least 3 timed runs, got {config.repeats}")
    for field in ("iterations", "chunk", "lbfgs_history", "probe_size"):
        if config[field] < 1:
            raise NstjaxError(f"--config.{field}: must be >= 1, got {config[field]}")


def main(args: argparse.Namespace) -> int:
    from nstjax.config import load_config

    config = load_config(args.config, args.config_overrides)
    _check(config)
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise NstjaxError(f"--output {output}: exists and is not a folder")
    weights = args.weights or config.weights or None

    from nstjax import vgg
    from nstjax.bench import report, suite

    params = vgg.load_params(weights)
    result = suite.run_suite(
        params, config, workdir=output, weights=weights, log=lambda s: print(s, flush=True)
    )
    paths = report.write_all(result, output)
    print(report.markdown_table(result["results"]), end="")
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
    return 0
