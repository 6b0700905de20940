"""Interruptions: SIGINT and SIGTERM handled alike, each with its own exit status.

Ctrl-C raises :class:`KeyboardInterrupt`; :func:`handle_sigterm` makes SIGTERM (how schedulers
and preemptible VMs stop a job) raise :class:`Terminated`, a subclass of it, so that every
``except KeyboardInterrupt`` that keeps work on the way out keeps it for both. Code that keeps
something adds a note to the exception (``error.add_note("kept ...")``); the command line prints
the notes on one line and exits with :func:`exit_status`.
"""

import contextlib
import signal
from collections.abc import Iterator


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def signal_name(error: KeyboardInterrupt) -> str:
    """``"SIGTERM"`` or ``"SIGINT"``."""
    return "SIGTERM" if isinstance(error, Terminated) else "SIGINT"


def exit_status(error: KeyboardInterrupt) -> int:
    """128 + the signal's number: 143 for SIGTERM, 130 for SIGINT (the shell's convention)."""
    return 128 + (signal.SIGTERM if isinstance(error, Terminated) else signal.SIGINT)


def kept(error: BaseException) -> str:
    """What the code on the way out said it kept (the exception's notes), on one line."""
    return "; ".join(getattr(error, "__notes__", []))


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def handle_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (in the main thread only)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
