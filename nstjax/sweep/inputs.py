"""A sweep's input images: folders listed, every file read once, every problem collected."""

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nstjax import image, resample
from nstjax.errors import NstjaxError
from nstjax.run import INITS


@dataclasses.dataclass
class Inputs:
    """The images a sweep reads, at full resolution, keyed by absolute path.

    Attributes:
        contents: content image files, in order.
        styles: style image files, in order.
        images: path -> ``[H, W, 3]`` float32 in [0, 1], for every content, style and init file.
    """

    contents: list[str]
    styles: list[str]
    images: dict[str, np.ndarray]

    def content_at(self, path: str, size: int) -> np.ndarray:
        """A content image with its longer side at ``size`` pixels."""
        return resample.resize_long_side(self.images[path], size)


class Contents(Mapping):
    """Content images by ``(path, size)``, resized on first use (a run's ``content`` key)."""

    def __init__(self, inputs: Inputs):
        self.inputs, self.cache = inputs, {}

    def __getitem__(self, key):
        if key not in self.cache:
            self.cache[key] = self.inputs.content_at(*key)
        return self.cache[key]

    def __iter__(self):
        return iter(self.cache)

    def __len__(self):
        return len(self.cache)


def list_files(entries: Sequence[str], what: str, problems: list[str]) -> list[str]:
    """Absolute paths of the image files that ``entries`` (files or folders) name.

    Every bad entry (missing, an empty folder) is appended to ``problems``.
    """
    if isinstance(entries, (str, os.PathLike)):
        entries = [entries]
    if not entries:
        problems.append(f"no {what}s given (data.{what.split()[0]})")
        return []
    files: list[str] = []
    for entry in entries:
        try:
            files.extend(str(p.resolve()) for p in image.list_images([entry], what))
        except NstjaxError as e:
            problems.append(str(e))
    return files


def load(
    contents: Sequence[str], styles: Sequence[str], inits: Sequence[str], problems: list[str]
) -> Inputs:
    """Reads every distinct content, style and init image file once.

    Args:
        contents: content files (from :func:`list_files`).
        styles: style files.
        inits: values of the ``init`` field; those that are not ``content``/``noise``/``style``
            are image files.
        problems: every unreadable file is appended here.

    Returns:
        The inputs (files that failed to load are missing from ``images``).
    """
    images: dict[str, np.ndarray] = {}
    wanted = [(p, "content image") for p in contents] + [(p, "style image") for p in styles]
    wanted += [
        (str(Path(i).resolve()), "init image") for i in dict.fromkeys(inits) if i not in INITS
    ]
    for path, what in wanted:
        if path in images:
            continue
        try:
            images[path] = image.load_image(path, what=what)
        except NstjaxError as e:
            problems.append(str(e))
    return Inputs(list(contents), list(styles), images)
