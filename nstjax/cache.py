"""Where nstjax keeps what it downloads, converts or builds: one folder per user."""

import os
from pathlib import Path


def cache_dir() -> Path:
    """The nstjax cache folder (weights, the native kernel build, JAX's compilation cache).

    Returns:
        ``$XDG_CACHE_HOME/nstjax`` when XDG_CACHE_HOME is set, else ``~/.cache/nstjax``.
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nstjax"
