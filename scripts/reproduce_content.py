"""Content reconstructions of Gatys et al. 2016 (their figure 1, bottom row), one batched call.

Five runs start from white noise and minimise only the content loss at conv1_2, conv2_2, conv3_2,
conv4_2 and conv5_2 respectively (style weight 0, no TV). The paper: reconstructions from the
first three are almost perfect; from conv4_2 and conv5_2 the pixel detail is lost while the
arrangement is kept. Writes ``content_reconstructions.png`` (figure) and ``.md`` (PSNR, SSIM
against the content image, and PSNR at 1/8 resolution, a measure of the arrangement alone).

    python scripts/reproduce_content.py --size 128 --steps 300 --workdir reproductions
"""

from __future__ import annotations

import sys

import _figures
import numpy as np

from nstjax import api, image, init, metrics
from nstjax.batch import build

LAYERS = ("conv1_2", "conv2_2", "conv3_2", "conv4_2", "conv5_2")


def coarse_psnr(result: np.ndarray, reference: np.ndarray, factor: int = 8) -> float:
    """PSNR of the two images downsampled by ``factor``: agreement of the layout alone."""
    shape = (max(1, reference.shape[0] // factor), max(1, reference.shape[1] // factor))
    return metrics.psnr(image.resize(result, shape), image.resize(reference, shape))


def main(argv: list[str] | None = None) -> int:
    p = _figures.parser(
        "Content reconstructions from white noise at conv1_2 ... conv5_2 (Gatys et al. 2016).",
        size=128,
        steps=300,
        content="skimage_astronaut.png",
        style=None,
        inits=("noise", "uniform"),
    )
    args = p.parse_args(argv)
    content = _figures.load(args.content, args.size)
    params = _figures.load_params(args.weights)
    runs = [
        api.Run(
            content_layers=(layer,),
            style_layers=("conv1_1",),  # unused (weight 0); a program needs one style layer
            style_weight=0.0,
            tv_weight=0.0,
            init=args.init,
            noise_scale=args.noise_scale,
            seed=args.seed,
            learning_rate=_figures.learning_rate(args),
        )
        for layer in LAYERS
    ]
    results = _figures.stylize(params, args, [content], [content], runs, "content")

    start = build.initial_image(runs[0], content, [content], init.mean_colour(params))
    rows = [["initial noise", metrics.psnr(start, content), metrics.ssim(start, content),
             coarse_psnr(start, content), "", ""]]  # fmt: skip
    labels = [f"PSNR {rows[0][1]:.1f}\nSSIM {rows[0][2]:.2f}"]
    for layer, r in zip(LAYERS, results):
        psnr, ssim = metrics.psnr(r.image, content), metrics.ssim(r.image, content)
        rows.append([layer, psnr, ssim, coarse_psnr(r.image, content),
                     float(r.history[0, 1]), r.final["content"]])  # fmt: skip
        labels.append(f"PSNR {psnr:.1f}\nSSIM {ssim:.2f}")
    setting = (
        f"{content.shape[1]}x{content.shape[0]} px, {args.steps} {args.optimizer} steps, "
        f"{args.pooling} pooling, init {args.init}"
        + (f" ({args.noise_scale:g} grey levels)" if args.init == "noise" else "")
    )
    figure = _figures.grid(
        [[content, start, *(r.image for r in results)]],
        col_labels=["content", "init", *LAYERS],
        cell_labels=[["", *labels]],
        cell=max(128, args.size),
        title=f"Content reconstructions from noise ({setting})",
        caption="Each image minimises only the content loss at one layer. PSNR/SSIM against "
        "the content image.",
    )
    table = f"Content reconstructions, {setting}.\n\n" + _figures.markdown_table(
        ["layer", "PSNR (dB)", "SSIM", "PSNR at 1/8 size (dB)", "content loss start", "end"],
        rows,
    )
    _figures.save(args.workdir, "content_reconstructions", figure, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
