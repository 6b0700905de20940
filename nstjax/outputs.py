"""Where results go: output names unique by construction, every location checked before work.

A command that writes images decides all its file names first, refuses a name that two inputs
would share, an existing file (unless told to overwrite it), a folder where a file should go and
a location it cannot write, all before anything is compiled. Images are written atomically
(:func:`nstjax.image.save_image`), so nothing is ever half-written.
"""

import os
from collections.abc import Sequence
from pathlib import Path

from nstjax.errors import NstjaxError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def labels(paths: Sequence[Path], what: str) -> list[str]:
    """A short name per input file, unique among ``paths``: its stem, or where two files share a
    stem, the stem and suffix (``a_jpg``, ``a_png``).

    Raises:
        NstjaxError: two inputs still share a name (the same file name in two folders).
    """
    stems = [p.stem for p in paths]
    names = [
        f"{p.stem}_{p.suffix.lstrip('.').lower()}" if stems.count(p.stem) > 1 else p.stem
        for p in paths
    ]
    seen: dict[str, Path] = {}
    for path, name in zip(paths, names):
        if name in seen and seen[name] != path:
            raise NstjaxError(
                f"{what}s {seen[name]} and {path} would write the same output name {name!r}; "
                "rename one or run them separately"
            )
        seen[name] = path
    return names


def failed_path(path: Path) -> Path:
    """Where a failed run's last finite image goes: ``x.png`` -> ``x.failed.png``."""
    return path.with_name(f"{path.stem}.failed{path.suffix}")


def _writable_folder(folder: Path, option: str, output: Path) -> None:
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise NstjaxError(f"{option} {output}: {probe} exists and is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise NstjaxError(f"{option} {output}: {probe} is not writable")


def check_outputs(paths: Sequence[Path], overwrite: bool, option: str = "--output") -> None:
    """Checks that every path can be written and none would be lost.

    Args:
        paths: the files a command will write.
        overwrite: whether existing files may be replaced.
        option: the option the paths come from, for the messages.

    Raises:
        NstjaxError: a path with another suffix than .png/.jpg/.jpeg, two equal paths, a folder
            where a file should go, an existing file without ``overwrite``, or a location that
            cannot be written.
    """
    seen = set()
    for path in paths:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise NstjaxError(f"{option} {path}: suffix must be .png, .jpg or .jpeg")
        if path in seen:
            raise NstjaxError(f"{option} {path}: two results would be written to this file")
        seen.add(path)
        if path.is_dir():
            raise NstjaxError(f"{option} {path}: is a folder; name an image file")
        if path.exists() and not overwrite:
            raise NstjaxError(
                f"{option} {path}: exists; pass --overwrite to replace it or choose another name"
            )
        _writable_folder(path.parent, option, path)
