"""Small public-domain and CC0 example images that ship with nstjax (sources and licences:
SOURCES.md).

``nstjax stylize --output out.png`` with no ``--content``/``--style`` stylises :data:`CONTENT` with
:data:`STYLE`; the configs under ``configs/`` and the scripts under ``scripts/`` name their images
through :func:`path`, so they run from a fresh clone or an installed package.
"""

from pathlib import Path

from nstjax.errors import NstjaxError

FOLDER = Path(__file__).resolve().parent
CONTENT = FOLDER / "chelsea.jpg"
"""A photograph (CC0): the default content image."""
STYLE = FOLDER / "starry_night.jpg"
"""A painting (public domain): the default style image."""
STYLES = (STYLE, FOLDER / "great_wave.jpg")
"""The paintings offered as default styles."""


def names() -> list[str]:
    """The file names of every shipped example image, sorted."""
    return sorted(p.name for p in FOLDER.glob("*.jpg"))


def path(name: str) -> Path:
    """The shipped example image ``name`` (e.g. ``"great_wave.jpg"``).

    Args:
        name: a file name from :func:`names`.

    Returns:
        Its absolute path inside the installed package.

    Raises:
        NstjaxError: no example image has that name (the message lists the ones there are).
    """
    found = FOLDER / name
    if Path(name).name != name or not found.is_file() or found.suffix != ".jpg":
        raise NstjaxError(f"no example image {name!r} (there are: {', '.join(names())})")
    return found
