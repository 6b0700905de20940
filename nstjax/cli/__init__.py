"""The ``nstjax`` command: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module in this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` to a callable taking the parsed arguments.
"""

import argparse
import importlib
import sys

SUBCOMMANDS = ("stylize", "weights", "sweep", "bench", "train", "apply", "score")


class HelpWithDefaults(argparse.HelpFormatter):
    """``--help`` shows each option's default (except where there is none to show)."""

    def _get_help_string(self, action):
        text = action.help or ""
        shown = not (action.default is None or action.default is False)
        shown = shown and action.default is not argparse.SUPPRESS
        if shown and action.option_strings and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


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


def enable_compilation_cache() -> None:
    """Turns on JAX's persistent compilation cache under the nstjax cache folder.

    A second identical command then loads its compiled programs instead of compiling again.
    ``NSTJAX_COMPILATION_CACHE=0`` turns it off; ``=PATH`` puts it elsewhere.
    """
    import os

    setting = os.environ.get("NSTJAX_COMPILATION_CACHE", "")
    if setting == "0":
        return
    import jax

    from nstjax.weights import cache_dir

    jax.config.update("jax_compilation_cache_dir", setting or str(cache_dir() / "jax"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def main(argv=None) -> int:
    """Entry point of the console script; returns the exit status."""
    from nstjax.config import split_config_args
    from nstjax.errors import NstjaxError

    parser = build_parser()
    rest, overrides = split_config_args(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(rest)
    args.config_overrides = overrides
    if overrides and not hasattr(args, "config"):
        print(f"nstjax: error: {args.command} takes no --config.FIELD overrides", file=sys.stderr)
        return 2
    enable_compilation_cache()
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
