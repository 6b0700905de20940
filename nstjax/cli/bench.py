"""``nstjax bench``: throughput, MFU and memory of the compiled step over a config's grid.

    nstjax bench --config configs/bench.py:quick --output /tmp/bench

Writes ``bench.json`` (every figure), ``bench.md`` (a table) and ``bench.png`` (throughput against
batch size) into the output folder. The grid lives in the config file; ``--config.FIELD=VALUE``
changes one field.
"""

import argparse
import sys

from nstjax.errors import NstjaxError

_FIELDS = ("sizes", "batch_sizes", "precisions", "remat", "optimizers", "iterations", "repeats")
"""Fields every bench config has (configs/bench.py)."""


def register(subparsers) -> None:
    from nstjax.cli import HelpWithDefaults

    p = subparsers.add_parser(
        "bench",
        help="benchmark the compiled optimisation step",
        description="Image-iterations per second, MFU and memory over a grid of cases. The grid "
        "lives in the config file; --config.FIELD=VALUE overrides one field, e.g. "
        "--config.sizes='(256,)' --config.batch_sizes='(1,8)'.",
        formatter_class=HelpWithDefaults,
    )
    p.add_argument(
        "--config",
        required=True,
        help="configs/bench.py[:quick|:cpu]; add --config.FIELD=VALUE to override a field",
    )
    p.add_argument("--output", required=True, help="folder for bench.json, bench.md, bench.png")
    p.add_argument("--weights", default=None, help="VGG-19 weights (.h5 or .npz)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run's results in --output"
    )
    p.set_defaults(func=main)


def _check_kind(config, spec: str) -> None:
    missing = [f for f in _FIELDS if f not in config]
    if missing:
        hint = (
            "; it looks like a sweep config: run it with 'nstjax sweep'" if "data" in config else ""
        )
        raise NstjaxError(
            f"--config {spec}: not a bench config (no field {', '.join(missing)}){hint}"
        )


def _check(config) -> None:
    from nstjax import validate
    from nstjax.bench.peaks import PRECISIONS
    from nstjax.kernels import CONVOLUTIONS
    from nstjax.optim import OPTIMIZERS
    from nstjax.run import LOOPS

    for field in ("sizes", "batch_sizes", "precisions", "remat", "optimizers"):
        if not config[field]:
            raise NstjaxError(f"--config.{field}: empty")
    for field, least in (("sizes", 16), ("batch_sizes", 1)):
        for v in config[field]:
            validate.integer(v, f"--config.{field}", least)
    for field, valid in (("precisions", PRECISIONS), ("optimizers", OPTIMIZERS)):
        for v in config[field]:
            validate.choice(v, f"--config.{field}", valid)
    for v in config.remat:
        validate.choice(v, "--config.remat", (True, False))
    validate.choice(config.loop, "--config.loop", ("", *LOOPS))
    validate.choice(config.convolution, "--config.convolution", ("", *CONVOLUTIONS))
    validate.integer(config.repeats, "--config.repeats", 3)
    for field in ("iterations", "chunk", "lbfgs_history", "probe_size"):
        validate.integer(config[field], f"--config.{field}", 1)


def main(args: argparse.Namespace) -> int:
    from nstjax import validate
    from nstjax.config import apply_override, load_config

    output = validate.output_folder(args.output, "--output")
    if (output / "bench.json").exists() and not args.overwrite:
        raise NstjaxError(
            f"--output {output}: holds an earlier run's bench.json (use --overwrite to replace it)"
        )
    config = load_config(args.config)
    _check_kind(config, args.config)
    for item in args.config_overrides:
        apply_override(config, item)
    _check(config)
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
