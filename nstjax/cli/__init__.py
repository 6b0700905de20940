"""The ``nstjax`` command: a thin dispatcher over subcommand modules.

Each subcommand lives in its own module in this package and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` to a callable taking the parsed arguments.
"""

import argparse
import importlib
import sys
import warnings

SUBCOMMANDS = ("stylize", "weights", "sweep", "bench", "train", "apply", "score", "video")


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``nstjax: error: ...``, exit status 2."""

    def error(self, message: str):
        self.exit(2, f"nstjax: error: {message} (see '{self.prog} --help')\n")


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
    parser = OneLineParser(
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
    try:
        return _dispatch(argv)
    except KeyboardInterrupt:  # during start-up (imports, parsing): no command had begun
        print("nstjax: interrupted by SIGINT before the command started", file=sys.stderr)
        return 130


def _dispatch(argv) -> int:
    """Parses ``argv`` and runs its command: an :class:`NstjaxError` or an ``OSError`` no command
    caught (a disk that fills, a folder that vanishes) is one line and exit status 2, an
    interruption one line saying what was kept."""
    from nstjax import interrupt
    from nstjax.config import split_config_args
    from nstjax.errors import NstjaxError, one_line

    parser = build_parser()
    rest, overrides = split_config_args(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(rest)
    args.config_overrides = overrides
    if overrides and not hasattr(args, "config"):
        print(f"nstjax: error: {args.command} takes no --config.FIELD overrides", file=sys.stderr)
        return 2
    enable_compilation_cache()
    try:
        with interrupt.handle_sigterm():
            status = args.func(args)
    except NstjaxError as e:
        print(f"nstjax: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"nstjax: error: {args.command}: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM; the notes say what was kept
        # coroutines of a save the signal cut short (orbax's) are collected at exit; their
        # "never awaited" warnings would follow the one line, saying nothing to a user
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        kept = interrupt.kept(e)
        line = f"nstjax: interrupted by {interrupt.signal_name(e)}" + (f"; {kept}" if kept else "")
        print(line, file=sys.stderr)
        return interrupt.exit_status(e)
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
