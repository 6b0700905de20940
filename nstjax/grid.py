"""Labelled image grids drawn with Pillow: the sweep's contact sheet and the scripts' figures.

:func:`labelled_grid` lays out rows x columns of images with a label left of each row, one above
each column, optional text under each cell, a title above and a caption below;
:func:`thumbnail` scales an image to a cell and :func:`stack` puts grids one above the other.
Everything here is a function of its arguments (no files are read or written).
"""

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
MISSING_FILL = (200, 200, 200)
TEXT = (0, 0, 0)
CORNER_TEXT = (120, 120, 120)


class Missing:
    """A cell whose image should exist but does not (yet): drawn as a grey box."""


MISSING = Missing()
"""The :class:`Missing` cell (``None`` is a blank cell)."""

Cell = Image.Image | Missing | None


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at ``size`` pixels (its fixed bitmap font without FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType
        return ImageFont.load_default()


def _to_pil(image: np.ndarray | Image.Image | Path | str) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, Path)):
        with Image.open(image) as img:
            return img.convert("RGB")
    from nstjax.image import to_uint8

    return Image.fromarray(to_uint8(np.asarray(image)))


def thumbnail(
    image: np.ndarray | Image.Image | Path | str, cell: int, *, smooth: bool = True
) -> Image.Image:
    """An image scaled to a long side of ``cell`` pixels, as RGB.

    Args:
        image: ``[H, W, 3]`` in [0, 1], a Pillow image, or an image file.
        cell: the long side of the result.
        smooth: Lanczos when shrinking; ``False``: nearest neighbour both ways. Enlarging is
            always nearest neighbour, so that a small image shows its pixels rather than a blur.

    Raises:
        OSError: ``image`` is a file that cannot be read as an image.
    """
    pic = _to_pil(image)
    scale = cell / max(pic.size)
    size = (max(1, round(pic.width * scale)), max(1, round(pic.height * scale)))
    resample = Image.Resampling.LANCZOS if smooth and scale < 1 else Image.Resampling.NEAREST
    return pic.resize(size, resample)


def _measure() -> ImageDraw.ImageDraw:
    return ImageDraw.Draw(Image.new("RGB", (1, 1)))


def shorten(text: str, width: float, text_font) -> str:
    """``text``, cut and ended with ``...`` if it is wider than ``width`` pixels."""
    draw = _measure()
    if draw.textlength(text, font=text_font) <= width:
        return text
    while text and draw.textlength(text + "...", font=text_font) > width:
        text = text[:-1]
    return text + "..."


def shorten_middle(text: str, width: float, text_font) -> str:
    """``text`` with its middle replaced by ``...`` if it is wider than ``width`` pixels (both
    ends stay: labels that differ only at their end stay distinguishable)."""
    draw = _measure()
    if draw.textlength(text, font=text_font) <= width:
        return text
    head, tail = text[: (len(text) + 1) // 2], text[(len(text) + 1) // 2 :]
    while (head or tail) and draw.textlength(head + "..." + tail, font=text_font) > width:
        if len(head) >= len(tail):
            head = head[:-1]
        else:
            tail = tail[1:]
    return head + "..." + tail


_BREAKS = re.compile(r"(?<=[+,;/ ])")
"""Where a label may break: after ``+``, ``,``, ``;``, ``/`` or a space."""


def abbreviate(text: str) -> str:
    """A label of ``+``-joined parts with each part's leading letters dropped where the previous
    part has the same ones: ``conv1_1+conv2_1+conv3_1`` -> ``conv1_1+2_1+3_1``."""
    parts = text.split("+")
    out = parts[:1]
    for before, part in zip(parts, parts[1:]):
        letters = re.match(r"[A-Za-z]*", part).group()
        same = letters and re.match(r"[A-Za-z]*", before).group() == letters
        out.append(part[len(letters) :] if same and part[len(letters) :] else part)
    return "+".join(out)


def fit_label(text: str, width: float, text_font, max_lines: int = 3) -> list[str]:
    """``text`` as at most ``max_lines`` lines, each at most ``width`` pixels wide.

    Tried in turn: the text as it is, broken after ``+ , ; /`` or spaces; then
    abbreviated (:func:`abbreviate`); then each line of the abbreviation shortened in the middle
    (:func:`shorten_middle`) and the lines past ``max_lines`` folded into the last one. So a
    label is cut only when nothing else fits, and then its ends survive.
    """
    for candidate in (text, abbreviate(text)):
        lines = _pack(_BREAKS.split(candidate), width, text_font)
        if len(lines) <= max_lines and all(
            _measure().textlength(line, font=text_font) <= width for line in lines
        ):
            return lines
    lines = _pack(_BREAKS.split(abbreviate(text)), width, text_font)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + ["".join(lines[max_lines - 1 :])]
    return [shorten_middle(line.strip(), width, text_font) for line in lines]


def _pack(tokens: Sequence[str], width: float, text_font) -> list[str]:
    """Tokens joined greedily into lines at most ``width`` wide (a wider token is a line)."""
    draw, lines, line = _measure(), [], ""
    for token in tokens:
        if line and draw.textlength((line + token).rstrip(), font=text_font) > width:
            lines.append(line.rstrip())
            line = ""
        line += token
    return [*lines, line.rstrip()] if line or not lines else lines


def wrap(text: str, width: float, text_font) -> list[str]:
    """``text`` broken into lines at most ``width`` pixels wide (at spaces; ``"\\n"`` breaks)."""
    draw = _measure()
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if draw.textlength(candidate, font=text_font) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def text_block(lines: Sequence[str], width: int, text_font, pad: int = 4) -> Image.Image:
    """A white strip ``width`` wide with the lines centred on it."""
    draw = _measure()
    heights = [draw.textbbox((0, 0), line or " ", font=text_font)[3] for line in lines]
    line_h = max(heights, default=0) + 2
    block = Image.new("RGB", (width, line_h * len(lines) + 2 * pad), BACKGROUND)
    draw = ImageDraw.Draw(block)
    for i, line in enumerate(lines):
        x = (width - draw.textlength(line, font=text_font)) / 2
        draw.text((x, pad + i * line_h), line, fill=TEXT, font=text_font)
    return block


def stack(parts: Sequence[Image.Image]) -> Image.Image:
    """Images one above the other, left-aligned, on white."""
    width = max(p.width for p in parts)
    out = Image.new("RGB", (width, sum(p.height for p in parts)), BACKGROUND)
    y = 0
    for part in parts:
        out.paste(part, (0, y))
        y += part.height
    return out


@dataclasses.dataclass(frozen=True)
class Sizes:
    """A grid's sizes, in pixels.

    Attributes:
        cell: the box size when no cell has an image.
        font_size: text size.
        gap: space between cells and around the grid.
        max_label_width: the widest the row labels' column may be.
    """

    cell: int = 128
    font_size: int = 12
    gap: int = 6
    max_label_width: int = 400


class _Layout(NamedTuple):
    """Where things go on a grid's canvas (pixels)."""

    label_w: int  # the row labels' column, gaps included
    box_w: int  # every cell's box
    box_h: int
    head: int  # the column labels' row
    under: int  # text under each box
    line_h: int
    gap: int

    def x(self, j: int) -> int:
        return self.label_w + self.gap + j * (self.box_w + self.gap)

    def y(self, i: int) -> int:
        return self.head + i * (self.box_h + self.under + self.gap) + self.gap


def _layout(cells, row_labels, corner, col_labels, cell_labels, sizes: Sizes, text_font) -> _Layout:
    cell, gap = sizes.cell, sizes.gap
    pics = [p for row in cells for p in row if isinstance(p, Image.Image)]
    box_w = max((p.width for p in pics), default=cell)
    box_h = max((p.height for p in pics), default=cell)
    measure = _measure()
    labels = [t for t in (*row_labels, corner) if t]
    label_w = max((int(measure.textlength(t, font=text_font)) for t in labels), default=0)
    label_w = min(label_w, sizes.max_label_width) + 2 * gap if labels else 0
    line_h = sizes.font_size + 2
    n_under = max((len(t.split("\n")) for row in cell_labels or [] for t in row), default=0)
    under = n_under * line_h + 4 if n_under else 0
    n_head = max((len(fit_label(t, box_w + gap, text_font)) for t in col_labels), default=1)
    head = n_head * line_h + 2 * gap if col_labels or corner else 0
    return _Layout(label_w, box_w, box_h, head, under, line_h, gap)


def _draw_row(canvas, draw, at: _Layout, i: int, row, label: str, texts, text_font) -> None:
    """Row ``i``: its label, its boxes and the text under them."""
    y = at.y(i)
    if label:
        lines = fit_label(label, at.label_w - 2 * at.gap, text_font, max(1, at.box_h // at.line_h))
        top = y + (at.box_h - len(lines) * at.line_h) / 2
        for k, line in enumerate(lines):
            x = at.label_w - at.gap - draw.textlength(line, font=text_font)
            draw.text((x, top + k * at.line_h), line, fill=TEXT, font=text_font)
    for j, pic in enumerate(row):
        x = at.x(j)
        if isinstance(pic, Image.Image):
            canvas.paste(pic, (x + (at.box_w - pic.width) // 2, y + (at.box_h - pic.height) // 2))
        elif isinstance(pic, Missing):
            draw.rectangle((x, y, x + at.box_w - 1, y + at.box_h - 1), fill=MISSING_FILL)
        for k, line in enumerate(texts[j].split("\n") if j < len(texts) else ()):
            xy = (x + (at.box_w - draw.textlength(line, font=text_font)) / 2,
                  y + at.box_h + 2 + k * at.line_h)  # fmt: skip
            draw.text(xy, line, fill=TEXT, font=text_font)


def _draw_column_labels(draw, at: _Layout, labels: Sequence[str], text_font) -> None:
    """Each column's label, fitted to its box (:func:`fit_label`), its last line on the box."""
    for j, text in enumerate(labels):
        lines = fit_label(text, at.box_w + at.gap, text_font)
        top = at.head - at.gap - len(lines) * at.line_h
        for k, line in enumerate(lines):
            x = at.x(j) + (at.box_w - draw.textlength(line, font=text_font)) / 2
            draw.text((x, top + k * at.line_h), line, fill=TEXT, font=text_font)


def labelled_grid(
    cells: Sequence[Sequence[Cell]],
    *,
    col_labels: Sequence[str] = (),
    row_labels: Sequence[str] = (),
    cell_labels: Sequence[Sequence[str]] | None = None,
    corner: str = "",
    title: str = "",
    caption: str = "",
    sizes: Sizes = Sizes(),
) -> Image.Image:
    """A grid of images (rows x columns) with labels.

    Args:
        cells: rows of Pillow images (:func:`thumbnail`), each centred in a box as large as the
            largest of them; ``None`` leaves a cell blank, :data:`MISSING` draws it grey.
        col_labels: a label above each column, fitted to the column's width in up to three
            lines (:func:`fit_label`).
        row_labels: a label left of each row, fitted to ``max_label_width`` in as many lines as
            a box is high.
        cell_labels: optional text under each cell (lines separated by ``"\\n"``).
        corner: grey text above the row labels (e.g. which axis runs which way).
        title: wrapped text above the grid, a little larger.
        caption: wrapped text below the grid.
        sizes: the box size when no cell has an image, the text size, the gaps and the widest
            row label (:class:`Sizes`).

    Returns:
        The grid as an RGB Pillow image.
    """
    text_font = font(sizes.font_size)
    at = _layout(cells, row_labels, corner, col_labels, cell_labels, sizes, text_font)
    width = at.x(max((len(r) for r in cells), default=0))
    canvas = Image.new("RGB", (width, at.y(len(cells))), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    if corner:
        corner = shorten(corner, at.label_w - 2 * at.gap, text_font)
        draw.text((at.gap, at.gap), corner, fill=CORNER_TEXT, font=text_font)
    _draw_column_labels(draw, at, col_labels, text_font)
    for i, row in enumerate(cells):
        label = row_labels[i] if i < len(row_labels) else ""
        texts = cell_labels[i] if cell_labels is not None and i < len(cell_labels) else ()
        _draw_row(canvas, draw, at, i, row, label, texts, text_font)
    parts = []
    if title:
        big = font(sizes.font_size + 2)
        parts.append(text_block(wrap(title, width - 16, big), width, big))
    parts.append(canvas)
    if caption:
        parts.append(text_block(wrap(caption, width - 16, text_font), width, text_font))
    return stack(parts)
