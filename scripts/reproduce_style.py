"""Style reconstructions (texture synthesis) of Gatys et al. 2016 (figure 1, top row), one batch.

Five runs start from white noise and minimise only the style loss on growing layer subsets:
conv1_1; conv1_1 + conv2_1; ... up to conv5_1 (content weight 0, no TV). The paper: the style
is matched on growing spatial scales, the larger subsets giving larger structures. Writes
``style_reconstructions.png`` and ``.md``: each run's own style loss (start -> end) and every
result's loss at each of the five layers (so runs can be compared on the same measure). The
optimised pixels are not bounded; the saved images are clipped to [0, 1], and the table gives
the loss of both.

    python scripts/reproduce_style.py --size 128 --steps 300 --workdir reproductions
"""

from __future__ import annotations

import sys

import _figures
import jax.numpy as jnp

from nstjax import api, losses, vgg

ALL = _figures.STYLE_SUBSETS[-1]


def layer_losses(params, image, style, pooling: str) -> list[float]:
    """Style loss of ``image`` at each of conv1_1 ... conv5_1 (nstjax's normalisation)."""
    ours = vgg.features(params, jnp.asarray(image), ALL, pooling)
    theirs = vgg.features(params, jnp.asarray(style), ALL, pooling)
    return [
        float(losses.style_layer_loss(losses.gram(ours[n]), losses.gram(theirs[n]))) for n in ALL
    ]


def main(argv: list[str] | None = None) -> int:
    p = _figures.parser(
        "Style reconstructions (texture synthesis) from growing layer subsets (Gatys et al.).",
        size=128,
        steps=300,
        content=None,
        style="starry_night.jpg",
        inits=("noise", "uniform"),
    )
    p.add_argument(
        "--style-weight",
        type=float,
        default=1e3,
        help="beta (1e3). Only the loss's scale: with content weight 0 it changes nothing but "
        "L-BFGS's behaviour, which (fixed step, no line search, as torch's) depends on it -- "
        "from mean-noise, conv1_1 alone stalls at 30 and overshoots at 1e5 (docs/gallery.md)",
    )
    args = p.parse_args(argv)
    style = _figures.load(args.style, args.size)
    runs = [
        api.Run(
            content_weight=0.0,
            content_layers=("conv1_1",),  # unused (weight 0); a program needs one content layer
            style_layers=subset,
            style_weight=args.style_weight,
            tv_weight=0.0,
            init=args.init,
            noise_scale=args.noise_scale,
            seed=args.seed,
            learning_rate=_figures.learning_rate(args),
        )
        for subset in _figures.STYLE_SUBSETS
    ]
    params = _figures.load_params(args.weights)
    # The "content" only sets the output's shape: the style image's own, at --size.
    results = _figures.stylize(params, args, [style], [style], runs, "style")

    names = ["conv1_1"] + [f"+ {n}" for n in ALL[1:]]
    rows, labels = [], []
    for k, (name, r) in enumerate(zip(names, results)):
        per_layer = layer_losses(params, r.image, style, args.pooling)
        shown = sum(per_layer[: k + 1]) / (k + 1)  # the run's own loss, of the saved image
        rows.append([name, float(r.history[0, 2]), r.final["style"], shown, *per_layer])
        labels.append(f"style loss\n{shown:.3g}")
    setting = (
        f"{style.shape[1]}x{style.shape[0]} px, {args.steps} {args.optimizer} steps, "
        f"{args.pooling} pooling, init {args.init}, style weight {args.style_weight:g}"
    )
    figure = _figures.grid(
        [[style, *(r.image for r in results)]],
        col_labels=["style", *names],
        cell_labels=[["", *labels]],
        cell=max(128, args.size),
        title=f"Style reconstructions from noise ({setting})",
        caption="Each image minimises only the style loss (Gram matrices) on the layers named "
        "above it, equally weighted; the loss under it is over those layers, of the image shown "
        "(clipped to [0, 1]).",
    )
    table = (
        f"Style reconstructions, {setting}. Own loss: the style loss on the run's layers, at "
        "the start, and at the end of the optimised image (unclipped, as optimised) and of the "
        "saved image (clipped to [0, 1]); then the saved image's loss at each layer.\n\n"
    ) + _figures.markdown_table(
        ["layers", "own loss start", "end (unclipped)", "end (clipped)", *ALL], rows
    )
    _figures.save(args.workdir, "style_reconstructions", figure, table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
