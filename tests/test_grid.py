"""nstjax.grid lays images out where the hand-computed layout puts them; the contact sheet uses it.

Cells are solid colours, so where each one landed can be read back from the pixels.
"""

import itertools

import numpy as np
from PIL import Image

from nstjax import grid
from nstjax.sweep import report
from nstjax.sweep.expand import Expansion, SweepRun

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)


def _solid(color, size=(10, 10)) -> Image.Image:
    return Image.new("RGB", size, color)


def test_cells_land_in_their_boxes():
    gap, box = 6, 10
    cells = [[_solid(RED), _solid(GREEN), None], [_solid(BLUE), grid.MISSING, _solid(YELLOW)]]
    out = np.asarray(grid.labelled_grid(cells, sizes=grid.Sizes(gap=gap)))
    # width: gap + 3 * (box + gap); height likewise for two rows (no labels, no title)
    assert out.shape == (gap + 2 * (box + gap), gap + 3 * (box + gap), 3)
    expected = [[RED, GREEN, (255, 255, 255)], [BLUE, grid.MISSING_FILL, YELLOW]]
    for i, j in itertools.product(range(2), range(3)):
        top, left = gap + i * (box + gap), gap + j * (box + gap)
        block = out[top : top + box, left : left + box].reshape(-1, 3)
        assert (block == expected[i][j]).all(), (i, j)
    assert (out[:gap] == 255).all() and (out[:, :gap] == 255).all()  # margins stay white


def test_a_smaller_image_is_centred_in_the_largest_ones_box():
    cells = [[_solid(RED, (20, 10)), _solid(BLUE, (4, 6))]]
    out = np.asarray(grid.labelled_grid(cells, sizes=grid.Sizes(gap=2)))
    box_left = 2 + 20 + 2  # second box: gap, first box, gap
    rows, cols = np.nonzero((out == BLUE).all(axis=-1))
    assert (cols.min(), cols.max()) == (box_left + 8, box_left + 11)  # (20 - 4) / 2 = 8 in
    assert (rows.min(), rows.max()) == (2 + 2, 2 + 7)  # (10 - 6) / 2 = 2 down


def test_labels_take_room_and_ink():
    cells = [[_solid(RED), _solid(GREEN)]]
    bare = grid.labelled_grid(cells)
    out = grid.labelled_grid(
        cells,
        row_labels=["a row"],
        col_labels=["c1", "c2"],
        cell_labels=[["x", "y\nz"]],
        title="title",
        caption="caption",
    )
    assert out.width > bare.width and out.height > bare.height
    pixels = np.asarray(out)
    dark = (pixels.sum(axis=-1) < 200) & ~(pixels == RED).all(-1) & ~(pixels == GREEN).all(-1)
    red_rows, red_cols = np.nonzero((pixels == RED).all(axis=-1))
    assert dark[:, : red_cols.min()].any()  # the row label, left of the first cell
    assert dark[: red_rows.min(), red_cols.min() :].any()  # column labels and title, above
    assert dark[red_rows.max() + 1 :].any()  # the cell labels and caption, below


def test_shorten_and_wrap_keep_to_the_width():
    font = grid.font(12)
    long = "a rather long label " * 5
    short = grid.shorten(long, 60, font)
    assert short.endswith("...") and len(short) < len(long)
    assert grid.shorten("ok", 60, font) == "ok"
    lines = grid.wrap(long, 80, font)
    assert len(lines) > 1 and " ".join(lines).split() == long.split()


def test_thumbnail_scales_the_long_side_and_keeps_pixels_when_enlarging():
    image = np.zeros((2, 4, 3), np.float32)
    image[:, 2:] = 1.0
    thumb = np.asarray(grid.thumbnail(image, 8))
    assert thumb.shape == (4, 8, 3)
    assert (thumb[:, :4] == 0).all() and (thumb[:, 4:] == 255).all()  # nearest neighbour
    assert grid.thumbnail(_solid(RED, (40, 20)), 10).size == (10, 5)


def _run(index, coords):
    return SweepRun(
        id=f"{index:03d}",
        index=index,
        label="",
        content="c.png",
        style="s.png",
        values={},
        coords=coords,
    )


def test_contact_sheet_puts_runs_by_their_axes(tmp_path):
    colors = {("1", "a"): RED, ("1", "b"): GREEN, ("2", "a"): BLUE}  # ("2", "b") has no image
    runs = []
    for index, (w, s) in enumerate(itertools.product("12", "ab")):
        runs.append(_run(index, {"weight": w, "seed": s, "content": "c", "style": "s"}))
        if (w, s) in colors:
            _solid(colors[w, s], (16, 16)).save(tmp_path / f"{index}.png")
    axes = {"content": ["c"], "style": ["s"], "weight": ["1", "2"], "seed": ["a", "b"]}
    expansion = Expansion(runs=runs, axes=axes, varying=["weight", "seed"])

    def image_path(run):
        path = tmp_path / f"{run.index}.png"
        return path if path.exists() else tmp_path / "missing.png"

    sheet = np.asarray(report.contact_sheet(expansion, image_path, "weight", "seed", cell=16))
    where = {}
    for key, color in colors.items():
        rows, cols = np.nonzero((sheet == color).all(axis=-1))
        assert len(rows) == 16 * 16, key  # the whole thumbnail, once
        where[key] = (rows.min(), cols.min())
    grey_rows, grey_cols = np.nonzero((sheet == grid.MISSING_FILL).all(axis=-1))
    assert len(grey_rows) >= 16 * 16  # the run without an image
    assert where["1", "a"][0] == where["1", "b"][0] < where["2", "a"][0]  # weight down
    assert where["1", "a"][1] == where["2", "a"][1] < where["1", "b"][1]  # seed across
    assert grey_rows.max() > where["1", "b"][0] and grey_cols.max() > where["2", "a"][1]
