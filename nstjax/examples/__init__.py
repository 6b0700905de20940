"""Small public-domain example images that ship with nstjax (sources and licences: SOURCES.md).

``nstjax stylize --output out.png`` with no ``--content``/``--style`` stylises :data:`CONTENT` with
:data:`STYLE`; the configs under ``configs/`` use them unless told otherwise.
"""

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
CONTENT = FOLDER / "chelsea.jpg"
"""A photograph (CC0): the default content image."""
STYLE = FOLDER / "starry_night.jpg"
"""A painting (public domain): the default style image."""
STYLES = (STYLE, FOLDER / "great_wave.jpg")
"""Every example painting."""
