"""Shared helpers of the figure scripts: arguments, inputs, labelled figures, tables.

The scripts are thin: each builds a list of :class:`nstjax.api.Run` and makes one batched call
to :func:`nstjax.api.stylize_batch`. What lives here is presentation (a PNG grid with labels
drawn by :mod:`nstjax.grid`, a markdown table) and the few lines every script shares. The
figures the paper configs replaced are made by ``nstjax sweep --config configs/paper_*.py``.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from nstjax import grid as nst_grid
from nstjax import image as nst_image


def parser(
    description: str,
    *,
    size: int,
    steps: int,
) -> argparse.ArgumentParser:
    """The arguments every figure script takes (defaults differ per script).

    Args:
        description: the script's one-line purpose.
        size: default longer side of the generated images, in pixels.
        steps: default optimisation steps.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--size", type=int, default=size, help=f"longer side in pixels ({size})")
    p.add_argument("--steps", type=int, default=steps, help=f"optimisation steps ({steps})")
    p.add_argument("--workdir", type=Path, default=Path("reproductions"), help="output folder")
    p.add_argument("--optimizer", choices=("lbfgs", "adam"), default="lbfgs")
    p.add_argument("--lr", type=float, default=None, help="step size (lbfgs 1, adam 4)")
    p.add_argument("--lbfgs-history", type=int, default=100, help="L-BFGS pairs (100)")
    p.add_argument(
        "--pooling", choices=("avg", "max"), default="avg", help="avg: the paper's choice (avg)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the noise initialisation")
    p.add_argument("--weights", default=None, help="VGG-19 weights (default: $NSTJAX_WEIGHTS)")
    return p


def learning_rate(args: argparse.Namespace) -> float:
    """The step size: ``--lr``, else 1 for L-BFGS and 4 (pixel units) for Adam."""
    return args.lr if args.lr is not None else (1.0 if args.optimizer == "lbfgs" else 4.0)


def load_params(weights: str | None):
    """The real VGG-19 parameters (``--weights``, else ``$NSTJAX_WEIGHTS`` / the cache)."""
    from nstjax import vgg

    return vgg.load_params(weights)


def load(path: Path, size: int | None) -> np.ndarray:
    """An image resized so that its longer side is ``size`` (``None``: as it is), ``[H, W, 3]`` in
    [0, 1]."""
    return nst_image.load_image(path, size, "image")


def grid(
    cells: Sequence[Sequence[np.ndarray | None]],
    *,
    col_labels: Sequence[str] = (),
    row_labels: Sequence[str] = (),
    cell_labels: Sequence[Sequence[str]] | None = None,
    cell: int = 128,
    title: str = "",
    caption: str = "",
    font_size: int = 12,
) -> Image.Image:
    """A labelled grid of images (rows x columns): :func:`nstjax.grid.labelled_grid`.

    Args:
        cells: rows of ``[H, W, 3]`` images in [0, 1]; ``None`` leaves a cell blank. Each image
            is scaled (nearest neighbour, so pixels stay visible) to a long side of ``cell``.
        col_labels: a label above each column.
        row_labels: a label left of each row.
        cell_labels: optional text under each cell (lines separated by ``"\\n"``).
        cell: the long side of each cell's image, in pixels.
        title: a line above everything.
        caption: wrapped text below everything.
        font_size: text size in pixels.

    Returns:
        The figure as an RGB Pillow image.
    """
    pictures = [
        [None if img is None else nst_grid.thumbnail(img, cell, smooth=False) for img in row]
        for row in cells
    ]
    return nst_grid.labelled_grid(
        pictures,
        col_labels=col_labels,
        row_labels=row_labels,
        cell_labels=cell_labels,
        title=title,
        caption=caption,
        sizes=nst_grid.Sizes(cell=cell, font_size=font_size),
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats are printed with 4 significant digits."""

    def fmt(value: object) -> str:
        if isinstance(value, float):
            return "inf" if math.isinf(value) else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def save(workdir: Path, name: str, figure: Image.Image, table: str) -> None:
    """Writes ``NAME.png`` and ``NAME.md`` under ``workdir`` (created if needed)."""
    workdir.mkdir(parents=True, exist_ok=True)
    figure.save(workdir / f"{name}.png", optimize=True)
    (workdir / f"{name}.md").write_text(table)
    print(f"wrote {workdir / name}.png and .md", file=sys.stderr)
