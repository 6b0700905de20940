"""Checks of the values a user gives, shared by every entry point.

Each check raises :class:`~nstjax.errors.NstjaxError` with one line that names the option and
the value and says what is wrong (``--style-scale inf: must be a finite number > 0``); the
command line turns it into ``nstjax: error: ...`` and exit status 2. Every entry point runs its
checks before it reads an image or compiles anything, so a bad value costs no time.
"""

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from nstjax.errors import NstjaxError


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number(value, option: str, *, minimum: float | None = None, positive: bool = False) -> float:
    """A finite number, at least ``minimum`` (or ``> 0`` with ``positive``).

    Args:
        value: the value given.
        option: the option (or config field) it was given as, for the message.
        minimum: the least allowed value (``None``: any).
        positive: the value must be > 0.

    Returns:
        The value as a float.

    Raises:
        NstjaxError: not a number, not finite, or out of range.
    """
    if positive:
        bound = " > 0"
    else:
        bound = "" if minimum is None else f" >= {minimum:g}"
    ok = _is_number(value) and math.isfinite(value)
    ok = ok and not (positive and value <= 0) and not (minimum is not None and value < minimum)
    if not ok:
        raise NstjaxError(f"{option} {value!r}: must be a finite number{bound}")
    return float(value)


def numbers(values: Iterable, option: str, *, minimum: float | None = None, positive=False):
    """:func:`number` for each of ``values``; returns them as a list of floats."""
    return [number(v, option, minimum=minimum, positive=positive) for v in values]


def integer(value, option: str, minimum: int | None = 1, maximum: int | None = None) -> int:
    """An integer in ``[minimum, maximum]`` (either bound ``None``: open).

    Raises:
        NstjaxError: not an integer, or out of range.
    """
    low = minimum is not None and _is_number(value) and value < minimum
    high = maximum is not None and _is_number(value) and value > maximum
    if not isinstance(value, int) or isinstance(value, bool) or low or high:
        if minimum is not None and maximum is not None:
            bound = f" from {minimum} to {maximum}"
        elif minimum is not None:
            bound = f" >= {minimum}"
        else:
            bound = "" if maximum is None else f" <= {maximum}"
        raise NstjaxError(f"{option} {value!r}: must be an integer{bound}")
    return value


def choice(value, option: str, allowed: Sequence[str]) -> str:
    """One of ``allowed``; the message lists them.

    Raises:
        NstjaxError: ``value`` is not one of ``allowed``.
    """
    if value not in allowed:
        raise NstjaxError(f"{option} {value!r}: must be one of {', '.join(map(str, allowed))}")
    return value


def names(text: str, option: str) -> tuple[str, ...]:
    """The names of a comma-separated list, at least one.

    Raises:
        NstjaxError: the list is empty.
    """
    found = tuple(n.strip() for n in str(text).split(",") if n.strip())
    if not found:
        raise NstjaxError(f"{option} {text!r}: empty; name at least one")
    return found


def blend_weights(values: Sequence[float], option: str) -> list[float]:
    """Weights of a blend: finite, >= 0, not all 0.

    Raises:
        NstjaxError: a weight is not finite or negative, or all are 0.
    """
    weights = numbers(values, option, minimum=0)
    if weights and not sum(weights) > 0:
        raise NstjaxError(f"{option} {' '.join(map(str, values))}: the weights are all 0")
    return weights


def writable_location(path: str | os.PathLike, option: str) -> Path:
    """A file or folder that the command will create or replace: its nearest existing folder
    must be a folder it may write in.

    Raises:
        NstjaxError: an ancestor is a file, or the folder cannot be written.
    """
    path = Path(path)
    probe = path.absolute().parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise NstjaxError(f"{option} {path}: {probe} exists and is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise NstjaxError(f"{option} {path}: {probe} is not writable")
    return path


def output_folder(path: str | os.PathLike, option: str) -> Path:
    """A folder the command writes into (created if missing).

    Raises:
        NstjaxError: the path is a file, or it cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NstjaxError(f"{option} {path}: exists and is not a folder")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise NstjaxError(f"{option} {path}: is not writable")
    return writable_location(path, option)


def image_memory(shapes: Sequence[tuple[int, int]], option: str, value) -> None:
    """Refuses image sizes whose loading could not fit in this machine's memory.

    Args:
        shapes: the ``(height, width)`` the images would be read at.
        option: the option that chose the sizes, and ``value`` its value, for the message.

    Raises:
        NstjaxError: the largest image needs more than the memory budget.
    """
    from nstjax.batch import memory

    if not shapes:
        return
    need = max(memory.image_bytes(s) for s in shapes)
    have = memory.host_memory_bytes() * memory.BUDGET_FRACTION
    if need > have:
        biggest = max(shapes, key=lambda s: s[0] * s[1])
        raise NstjaxError(
            f"{option} {value}: {_image(biggest)} needs about "
            f"{_gigabytes(need)} to read, more than the {_gigabytes(have)} this machine may "
            f"use; choose a smaller {option}"
        )


def _image(shape: tuple[int, int]) -> str:
    if max(shape) < 10**7:
        return f"an image of {shape[0]}x{shape[1]} px"
    return "an image with over ten million pixels a side"


def _gigabytes(count: float) -> str:
    return f"{count / 1e9:.1f} GB" if count < 1e18 else "over a billion GB"


def scaled_side(size: int, scale: float, option: str) -> int:
    """``round(size * scale)``, the longer side of an image scaled by ``scale``.

    Raises:
        NstjaxError: the scale is not a finite number > 0.
    """
    number(scale, option, positive=True)
    return max(1, round(size * scale))
