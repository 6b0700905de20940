"""The content/style trade-off grid of Gatys et al. 2016 (their Composition VII figure), one batch.

Rows: style losses on growing layer subsets (conv1_1; + conv2_1; ... + conv5_1). Columns: the
ratio alpha/beta of content weight to style weight over four decades. All 25 runs are one
compiled batch (same shape, same program; the weights and layer weights are per-run values).

The ratio axis. The paper's columns read alpha/beta = 1e-5 ... 1e-1 for *its* losses: a content
loss ``1/2 sum (F - P)^2`` and per-layer style losses ``1/(4 N^2 M^2) sum (G - A)^2`` with
unnormalised Grams. nstjax uses means (``nstjax/losses.py``): its content loss is the paper's
divided by ``N M / 2`` and its layer-l style loss the paper's times ``4 / N_l^2``. The two
ratio scales therefore differ by a factor that depends on the image size and on the layer, so
no single shift maps one onto the other. The columns here are labelled with nstjax's own
alpha/beta, and as multiples of nstjax's default ratio (``api.Run()``'s content weight over its
style weight), over the same four decades as the paper.

    python scripts/reproduce_ratio_grid.py --size 64 --steps 150 --workdir reproductions
"""

from __future__ import annotations

import sys

import _figures

from nstjax import api

RELATIVE = (1e-2, 1e-1, 1.0, 1e1, 1e2)
"""alpha/beta as multiples of nstjax's default ratio (columns, left = most style)."""


def main(argv: list[str] | None = None) -> int:
    p = _figures.parser(
        "Content/style ratio x style-layer subsets grid (Gatys et al. 2016), one batch.",
        size=64,
        steps=150,
        content="skimage_chelsea.png",
        style="composition_vii.jpg",
    )
    p.add_argument(
        "--init",
        choices=("content", "mean-noise", "noise"),
        default="content",
        help="content: start from the photo (nstjax's default, fewer steps needed; default); "
        "mean-noise: ImageNet mean + 1 grey level of noise, as the paper's code; noise: uniform",
    )
    args = p.parse_args(argv)
    content = _figures.load(args.content, args.size)
    style = _figures.load(args.style, args.size)
    init = {
        "content": "content",
        "noise": "noise",
        "mean-noise": _figures.mean_noise(content.shape[:2], args.seed),
    }[args.init]
    default = api.Run()
    base_ratio = default.content_weight / default.style_weight
    runs = [
        api.Run(
            content_weight=default.content_weight,
            style_weight=default.style_weight / relative,
            style_layers=subset,
            tv_weight=0.0,
            init=init,
            seed=args.seed,
            learning_rate=_figures.learning_rate(args),
        )
        for subset in _figures.STYLE_SUBSETS
        for relative in RELATIVE
    ]
    results = _figures.stylize(
        _figures.load_params(args.weights), args, [content], [style], runs, "ratio grid"
    )

    cols = len(RELATIVE)
    grid_results = [results[i : i + cols] for i in range(0, len(results), cols)]
    row_names = ["conv1_1"] + [f"+ conv{k}_1" for k in range(2, 6)]
    col_names = [f"{base_ratio * r:.2g} ({r:g}x)" for r in RELATIVE]
    setting = (
        f"{content.shape[1]}x{content.shape[0]} px, {args.steps} {args.optimizer} steps, "
        f"{args.pooling} pooling, init {args.init}, content conv4_2, no TV"
    )
    figure = _figures.grid(
        [[r.image for r in row] for row in grid_results],
        col_labels=col_names,
        row_labels=row_names,
        cell=max(96, args.size),
        title=f"Content/style ratio alpha/beta (columns) vs style layers (rows), {setting}",
        caption="Columns: content weight / style weight in nstjax's normalisation (means, "
        f"nstjax/losses.py), and as a multiple of nstjax's default ({base_ratio:.2g}). The "
        "paper's 1e-5 ... 1e-1 labels are for summed losses; the two scales differ by a size- "
        "and layer-dependent factor, so only the span (four decades) carries over. Rows: style "
        "loss on conv1_1, then adding conv2_1 ... conv5_1 (equal weights).",
    )
    header = ["style layers", *col_names]
    content_rows = [
        [n, *(r.final["content"] for r in row)] for n, row in zip(row_names, grid_results)
    ]
    style_rows = [[n, *(r.final["style"] for r in row)] for n, row in zip(row_names, grid_results)]
    table = (
        f"Ratio grid, {setting}. Columns: alpha/beta in nstjax units (x nstjax default).\n\n"
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
