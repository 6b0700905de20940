"""Shared helpers of the reproduction scripts: arguments, inputs, labelled figures, tables.

The scripts are thin: each builds a list of :class:`nstjax.api.Run` and makes one batched call
to :func:`nstjax.api.stylize_batch`. What lives here is presentation (a PNG grid with labels
drawn by Pillow, a markdown table) and the few lines every script shares.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from nstjax import image as nst_image

SHARED_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"
"""``../shared/images`` beside the checkout: the public-domain test and gallery images."""

STYLE_SUBSETS = (
    ("conv1_1",),
    ("conv1_1", "conv2_1"),
    ("conv1_1", "conv2_1", "conv3_1"),
    ("conv1_1", "conv2_1", "conv3_1", "conv4_1"),
    ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1"),
)
"""Growing style-layer subsets: the rows of the paper's style-reconstruction figures."""


def parser(
    description: str, *, size: int, steps: int, content: str | None, style: str | None
) -> argparse.ArgumentParser:
    """The arguments every reproduction script takes (defaults differ per script).

    Args:
        description: the script's one-line purpose.
        size: default longer side of the generated images, in pixels.
        steps: default optimisation steps.
        content: default content image (a file name under ``../shared/images``); ``None``: the
            script takes no ``--content``.
        style: default style image, likewise.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--size", type=int, default=size, help=f"longer side in pixels ({size})")
    p.add_argument("--steps", type=int, default=steps, help=f"optimisation steps ({steps})")
    p.add_argument("--workdir", type=Path, default=Path("reproductions"), help="output folder")
    if content is not None:
        p.add_argument("--content", type=Path, default=SHARED_IMAGES / content, help="content")
    if style is not None:
        p.add_argument("--style", type=Path, default=SHARED_IMAGES / style, help="style image")
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


def stylize(params, args: argparse.Namespace, contents, styles, runs, label: str):
    """One batched ``api.stylize_batch`` call with the scripts' shared command-line options."""
    from nstjax import api

    return api.stylize_batch(
        params,
        contents,
        styles,
        runs,
        steps=args.steps,
        optimizer=args.optimizer,
        pooling=args.pooling,
        lbfgs_history=args.lbfgs_history,
        chunk=25,
        observer=Progress(label),
    )


def load(path: Path, size: int) -> np.ndarray:
    """An image resized so that its longer side is ``size``, ``[H, W, 3]`` in [0, 1]."""
    return nst_image.load_image(path, size, "image")


class Progress:
    """An :class:`nstjax.api.Observer` printing ``step/steps`` and the elapsed time to stderr
    after every chunk."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.start = time.perf_counter()

    def batch_started(self, batch) -> None:
        pass

    def chunk_done(self, batch, steps: int, metrics: np.ndarray, images) -> None:
        elapsed = time.perf_counter() - self.start
        total = batch.group.options.steps
        print(f"{self.label}: step {steps}/{total} ({elapsed:.0f}s)", file=sys.stderr, flush=True)

    def batch_finished(self, batch, results) -> None:
        pass


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType
        return ImageFont.load_default()


def _text_block(lines: Sequence[str], width: int, font, pad: int = 4) -> Image.Image:
    """White strip with centred lines of text, ``width`` wide."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    heights = [draw.textbbox((0, 0), line or " ", font=font)[3] for line in lines]
    line_h = max(heights, default=0) + 2
    block = Image.new("RGB", (width, line_h * len(lines) + 2 * pad), "white")
    draw = ImageDraw.Draw(block)
    for i, line in enumerate(lines):
        w = draw.textlength(line, font=font)
        draw.text(((width - w) / 2, pad + i * line_h), line, fill="black", font=font)
    return block


def _wrap(text: str, width: int, font) -> list[str]:
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if draw.textlength(candidate, font=font) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def _fit(img: np.ndarray, cell: int) -> Image.Image:
    """The image as Pillow RGB, scaled (nearest neighbour: pixels stay visible) to a long side
    of ``cell``."""
    pic = Image.fromarray(nst_image.to_uint8(img))
    scale = cell / max(pic.size)
    size = (max(1, round(pic.width * scale)), max(1, round(pic.height * scale)))
    return pic.resize(size, Image.Resampling.NEAREST)


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
    """A labelled grid of images (rows x columns), drawn with Pillow.

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
    font = _font(font_size)
    rows, cols = len(cells), max(len(r) for r in cells)
    gap = 6
    fitted = [[None if img is None else _fit(img, cell) for img in row] for row in cells]
    box_w = max((p.width for row in fitted for p in row if p is not None), default=cell)
    box_h = max((p.height for row in fitted for p in row if p is not None), default=cell)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max((int(measure.textlength(t, font=font)) for t in row_labels), default=0)
    label_w = label_w + 2 * gap if row_labels else 0
    lines_under = max((len(t.split("\n")) for row in (cell_labels or []) for t in row), default=0)
    under = lines_under * (font_size + 2) + 4 if lines_under else 0
    head = font_size + 2 * gap if col_labels else 0
    width = label_w + cols * (box_w + gap) + gap
    height = head + rows * (box_h + under + gap) + gap
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for j, text in enumerate(col_labels):
        x = label_w + gap + j * (box_w + gap) + (box_w - draw.textlength(text, font=font)) / 2
        draw.text((x, gap), text, fill="black", font=font)
    for i, row in enumerate(fitted):
        y = head + i * (box_h + under + gap) + gap
        if i < len(row_labels):
            text_w = draw.textlength(row_labels[i], font=font)
            xy = (label_w - gap - text_w, y + box_h / 2 - font_size / 2)
            draw.text(xy, row_labels[i], fill="black", font=font)
        for j, pic in enumerate(row):
            x = label_w + gap + j * (box_w + gap)
            if pic is not None:
                canvas.paste(pic, (x + (box_w - pic.width) // 2, y + (box_h - pic.height) // 2))
            if cell_labels is not None and j < len(cell_labels[i]):
                for k, line in enumerate(cell_labels[i][j].split("\n")):
                    xy = (x + (box_w - draw.textlength(line, font=font)) / 2,
                          y + box_h + 2 + k * (font_size + 2))  # fmt: skip
                    draw.text(xy, line, fill="black", font=font)
    parts = []
    if title:
        big = _font(font_size + 2)
        parts.append(_text_block(_wrap(title, width - 16, big), width, big))
    parts.append(canvas)
    if caption:
        parts.append(_text_block(_wrap(caption, width - 16, font), width, font))
    figure = Image.new("RGB", (width, sum(p.height for p in parts)), "white")
    y = 0
    for part in parts:
        figure.paste(part, (0, y))
        y += part.height
    return figure


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
