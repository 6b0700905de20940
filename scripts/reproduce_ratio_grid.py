"""The content/style trade-off grid of Gatys et al. 2016 (their Composition VII figure), one batch.

Rows: style losses on growing layer subsets (conv1_1; + conv2_1; ... + conv5_1). Columns: the
ratio alpha/beta of content weight to style weight over four decades. All 25 runs are one
compiled batch (same shape, same program; the weights and layer weights are per-run values).

The ratio axis. The paper's columns read alpha/beta = 1e-5 ... 1e-1 for *its* losses: a content
loss ``1/2 sum (F - P)^2`` and per-layer style losses ``1/(4 N^2 M^2) sum (G - A)^2`` with
unnormalised Grams. With ``--preset paper`` (the default) every run carries exactly those
formulas as per-layer weights (:func:`nstjax.presets.paper`: ``h w C / 2`` on the content
layer, ``N_l^2 / 4`` times ``w_l = 1/n`` on the style layers), so the columns are the paper's own
numbers; what still differs is the network (the paper's VGG-19 had its filters rescaled). With
``--preset nstjax`` the losses are nstjax's means and the columns are multiples of nstjax's
default ratio (``Run()``'s content weight over its style weight), over the same five decades.

    python scripts/reproduce_ratio_grid.py --size 64 --steps 150 --workdir reproductions
"""

from __future__ import annotations

import sys

import _figures

from nstjax import presets
from nstjax.run import Run

RELATIVE = (1e-2, 1e-1, 1.0, 1e1, 1e2)
"""alpha/beta as multiples of nstjax's default ratio (columns with ``--preset nstjax``)."""
PAPER_RATIOS = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
"""alpha/beta as the paper prints them (columns with ``--preset paper``)."""


def _runs(args, content):
    """The 25 runs, and the column labels: the paper's ratios with its own formulas
    (:func:`nstjax.presets.paper`), or multiples of nstjax's default ratio."""
    common = dict(init=args.init, seed=args.seed, learning_rate=_figures.learning_rate(args))
    if args.init == "noise":
        common["noise_scale"] = args.noise_scale
    if args.preset == "paper":
        shape = content.shape[:2]
        runs = [
            presets.make("paper", shape, style_layers=subset, style_weight=1.0 / r, **common).run
            for subset in _figures.STYLE_SUBSETS
            for r in PAPER_RATIOS
        ]
        return runs, [f"{r:g}" for r in PAPER_RATIOS]
    default = Run()
    base_ratio = default.content_weight / default.style_weight
    runs = [
        Run(
            content_weight=default.content_weight,
            style_weight=default.style_weight / relative,
            style_layers=subset,
            tv_weight=0.0,
            **common,
        )
        for subset in _figures.STYLE_SUBSETS
        for relative in RELATIVE
    ]
    return runs, [f"{base_ratio * r:.2g} ({r:g}x)" for r in RELATIVE]


def main(argv: list[str] | None = None) -> int:
    p = _figures.parser(
        "Content/style ratio x style-layer subsets grid (Gatys et al. 2016), one batch.",
        size=64,
        steps=150,
        content="skimage_chelsea.png",
        style="composition_vii.jpg",
        inits=("content", "noise", "uniform"),
    )
    p.add_argument(
        "--preset",
        choices=("paper", "nstjax"),
        default="paper",
        help="paper: the paper's formulas (sums, nstjax.presets) and its ratios 1e-5 ... 1e-1 "
        "(default); nstjax: nstjax's means, ratios as multiples of its default",
    )
    args = p.parse_args(argv)
    content = _figures.load(args.content, args.size)
    style = _figures.load(args.style, args.size)
    runs, col_names = _runs(args, content)
    results = _figures.stylize(
        _figures.load_params(args.weights), args, [content], [style], runs, "ratio grid"
    )

    cols = len(col_names)
    grid_results = [results[i : i + cols] for i in range(0, len(results), cols)]
    row_names = ["conv1_1"] + [f"+ conv{k}_1" for k in range(2, 6)]
    setting = (
        f"{content.shape[1]}x{content.shape[0]} px, {args.steps} {args.optimizer} steps, "
        f"{args.pooling} pooling, init {args.init}, content conv4_2, no TV, preset {args.preset}"
    )
    figure = _figures.grid(
        [[r.image for r in row] for row in grid_results],
        col_labels=col_names,
        row_labels=row_names,
        cell=max(96, args.size),
        title=f"Content/style ratio alpha/beta (columns) vs style layers (rows), {setting}",
        caption=(
            "Columns: alpha/beta as the paper prints it, with the paper's own formulas "
            "(--preset paper: 1/2 sum of squares, E_l = sum / (4 N^2 M^2), w_l = 1/n; on the "
            "original, not the paper's normalised, VGG-19)."
            if args.preset == "paper"
            else "Columns: content weight / style weight in nstjax's normalisation (means, "
            "nstjax/losses.py), and as a multiple of nstjax's default."
        )
        + " Rows: style loss on conv1_1, then adding conv2_1 ... conv5_1 (equal weights).",
    )
    header = ["style layers", *col_names]
    content_rows = [
        [n, *(r.final["content"] for r in row)] for n, row in zip(row_names, grid_results)
    ]
    style_rows = [[n, *(r.final["style"] for r in row)] for n, row in zip(row_names, grid_results)]
    table = (
        f"Ratio grid, {setting}. Columns: alpha/beta ({args.preset}'s units).\n\n"
        "Final content loss (conv4_2):\n\n"
        + _figures.markdown_table(header, content_rows)
        + "\nFinal style loss (over each row's layers):\n\n"
        + _figures.markdown_table(header, style_rows)
    )
    _figures.save(args.workdir, "ratio_grid", figure, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
