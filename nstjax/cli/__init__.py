"""The ``nstjax`` command: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module in this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` to a callable taking the parsed arguments.
"""

import argparse
import importlib
import sys

SUBCOMMANDS = ("stylize", "weights", "sweep", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nstjax", description="Batched, compiled neural style transfer in JAX."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"nstjax.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"nstjax.cli.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    """Entry point of the console script; returns the exit status."""
    from nstjax.errors import NstjaxError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except NstjaxError as e:
        print(f"nstjax: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nstjax: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
