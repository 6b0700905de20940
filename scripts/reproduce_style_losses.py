"""The style-loss family's comparisons, each figure one batched call.

``texture`` (Heitz et al. 2021, CVPR): texture synthesis from noise with the Gram loss and with
the sliced Wasserstein loss on several paintings. Each output's feature distribution is
compared with its style's by a measure written here, independent of the loss code: at each
style layer, the exact 1-D Wasserstein-2 distance (squared) between the output's and the style's
features projected on ``--directions`` fixed random unit directions (numpy's generator, the same
for every run), averaged over the directions. The paper's observation, checked per painting:
the sliced loss matches the distribution at least as well as the Gram loss.

``transfer`` (Li & Wand 2016; Li et al. 2017): style transfer on photo/painting pairs with the
Gram loss, the per-channel mean/std loss (Li et al.'s "Demystifying Neural Style Transfer") and
Li & Wand's MRF patches (conv3_1 and conv4_1, as CNNMRF), side by side.

    python scripts/reproduce_style_losses.py texture --size 128 --steps 200
    python scripts/reproduce_style_losses.py transfer --size 128 --steps 200
"""

from __future__ import annotations

import math
import sys

import _figures
import jax.numpy as jnp
import numpy as np

from nstjax import api, examples, resample, style_losses, vgg
from nstjax.architecture import downsampling
from nstjax.init import DEFAULT_NOISE_SCALE

STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
TEXTURES = ("starry_night.jpg", "great_wave.jpg", "shipwreck_of_the_minotaur.jpg")
PAIRS = (("astronaut.jpg", "starry_night.jpg"), ("chelsea.jpg", "great_wave.jpg"))
"""Images shipped in :mod:`nstjax.examples`."""
MRF_LAYERS = ("conv3_1", "conv4_1")


def w2_1d(a: np.ndarray, b: np.ndarray) -> float:
    """Exact squared Wasserstein-2 distance of two 1-D empirical measures (uniform weights): the
    integral over ``t`` in [0, 1] of the squared difference of their quantile functions."""
    a, b = np.sort(a), np.sort(b)
    cuts = np.union1d(np.arange(len(a) + 1) / len(a), np.arange(len(b) + 1) / len(b))
    mid = (cuts[:-1] + cuts[1:]) / 2
    qa = a[np.minimum((mid * len(a)).astype(int), len(a) - 1)]
    qb = b[np.minimum((mid * len(b)).astype(int), len(b) - 1)]
    return float(np.sum(np.diff(cuts) * (qa - qb) ** 2))


def distribution_distance(params, image, style, pooling: str, directions: int) -> list[float]:
    """Per style layer: the mean over fixed random directions of the exact 1-D W2^2 between the
    projections of ``image``'s and ``style``'s features (float64 numpy)."""
    ours = vgg.features(params, jnp.asarray(image), STYLE_LAYERS, pooling)
    theirs = vgg.features(params, jnp.asarray(style), STYLE_LAYERS, pooling)
    rng = np.random.default_rng(1234)
    out = []
    for name in STYLE_LAYERS:
        a = np.asarray(ours[name], np.float64).reshape(-1, ours[name].shape[-1])
        b = np.asarray(theirs[name], np.float64).reshape(-1, theirs[name].shape[-1])
        d = rng.normal(size=(directions, a.shape[1]))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        pa, pb = a @ d.T, b @ d.T
        out.append(float(np.mean([w2_1d(pa[:, k], pb[:, k]) for k in range(directions)])))
    return out


def square(name: str, size: int) -> np.ndarray:
    """The shipped image ``name``'s centred square crop, resized to ``size`` x ``size`` (one output
    shape for the whole batch: one compiled program)."""
    full = _figures.load(examples.path(name), None)
    h, w = full.shape[:2]
    s = min(h, w)
    crop = full[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return resample.resize(crop, (size, size))


def mrf_style_scale(style: np.ndarray, output_side: int) -> float:
    """The ``style_scale`` (at least 1) at which ``style`` keeps one MRF patch at its deepest
    layer: its shorter side at least the patch size times that layer's downsampling."""
    need = style_losses.MRF_PATCH * downsampling(MRF_LAYERS[-1])
    h, w = style.shape[:2]
    return max(1.0, math.ceil(need * max(h, w) / min(h, w) + 1) / output_side)


def stylize(params, args, contents, styles, runs):
    """The figure's one batched call."""
    return api.stylize_batch(
        params,
        contents,
        styles,
        runs,
        steps=args.steps,
        optimizer=args.optimizer,
        pooling=args.pooling,
        lbfgs_history=args.lbfgs_history,
    )


def _texture_runs(styles: int, losses: tuple[str, ...], args) -> list[api.Run]:
    """Texture synthesis of each style with each loss: from noise, no content term."""
    return [
        api.Run(
            content=i,
            style=i,
            style_loss=loss,
            content_weight=0.0,
            content_layers=("conv1_1",),  # unused (weight 0)
            style_layers=STYLE_LAYERS,
            style_weight=args.style_weight,
            tv_weight=0.0,
            init="noise",  # the network's mean colour plus Gaussian noise (nstjax.init)
            noise_scale=args.noise_scale,
            seed=args.seed,
            learning_rate=_figures.learning_rate(args),
        )
        for i in range(styles)
        for loss in losses
    ]


def texture(params, args) -> str:
    styles = [square(name, args.size) for name in TEXTURES]
    losses = ("gram", "sliced_wasserstein")
    results = stylize(params, args, styles, styles, _texture_runs(len(styles), losses, args))
    rows, cells, labels, verdicts = [], [], [], []
    for i, name in enumerate(TEXTURES):
        row_cells, row_labels, means = [styles[i]], [""], {}
        for j, loss in enumerate(losses):
            r = results[i * len(losses) + j]
            dist = distribution_distance(params, r.image, styles[i], args.pooling, args.directions)
            means[loss] = float(np.mean(dist))
            rows.append([name.split(".")[0], loss, *dist, means[loss]])
            row_cells.append(r.image)
            row_labels.append(f"distance {means[loss]:.4g}")
        cells.append(row_cells)
        labels.append(row_labels)
        verdicts.append(means["sliced_wasserstein"] <= means["gram"])
    setting = (
        f"{styles[0].shape[1]} px, {args.steps} {args.optimizer} steps, {args.pooling} pooling, "
        f"noise init ({args.noise_scale:g} grey levels), style weight {args.style_weight:g}, "
        "layers conv1_1 ... conv5_1"
    )
    figure = _figures.grid(
        cells,
        col_labels=["style", *losses],
        row_labels=[n.split(".")[0].split("_")[0] for n in TEXTURES],
        cell_labels=labels,
        cell=max(128, args.size),
        title=f"Texture synthesis, Gram vs sliced Wasserstein ({setting})",
        caption="Distance: per style layer, the mean over random directions of the exact 1-D "
        "Wasserstein-2 distance (squared) between the projected features of the output and of "
        "the style, averaged over the five layers (lower: closer feature distributions).",
    )
    table = (
        f"Texture synthesis ({setting}). Distribution distance per layer (mean over "
        f"{args.directions} fixed random directions of the exact 1-D W2^2 of the projected "
        "features), and its mean over layers.\n\n"
        + _figures.markdown_table(["style", "loss", *STYLE_LAYERS, "mean"], rows)
        + f"\nSliced Wasserstein at least as close as Gram: {sum(verdicts)} of {len(verdicts)} "
        "paintings.\n"
    )
    _figures.save(args.workdir, "style_losses_texture", figure, table)
    return table


def transfer(params, args) -> str:
    contents = [square(c, args.size) for c, _ in PAIRS]
    styles = [_figures.load(examples.path(s), args.size) for _, s in PAIRS]
    variants = (("gram", STYLE_LAYERS), ("mean_std", STYLE_LAYERS), ("mrf", MRF_LAYERS))
    runs = [
        api.Run(
            content=i,
            style=i,
            style_loss=loss,
            style_layers=layers,
            style_weight=args.style_weight,
            tv_weight=0.0,
            init="content",
            style_scale=mrf_style_scale(styles[i], args.size),
            learning_rate=_figures.learning_rate(args),
        )
        for i in range(len(PAIRS))
        for loss, layers in variants
    ]
    results = stylize(params, args, contents, styles, runs)
    cells, labels, rows = [], [], []
    for i, (c, s) in enumerate(PAIRS):
        mine = results[i * len(variants) : (i + 1) * len(variants)]
        cells.append([contents[i], styles[i], *(r.image for r in mine)])
        labels.append(["", "", *(f"style {r.final['style']:.3g}" for r in mine)])
        for (loss, layers), r in zip(variants, mine):
            rows.append([c.split(".")[0], s.split(".")[0], loss, ", ".join(layers),
                         float(r.history[0, 2]), r.final["style"], r.final["content"]])  # fmt: skip
    setting = (
        f"{contents[0].shape[1]} px, {args.steps} {args.optimizer} steps, {args.pooling} "
        f"pooling, content init, content weight 1 (conv4_2), style weight {args.style_weight:g}"
    )
    figure = _figures.grid(
        cells,
        col_labels=["content", "style", "gram", "mean_std", "mrf (conv3_1, conv4_1)"],
        cell_labels=labels,
        cell=max(128, args.size),
        title=f"Style transfer with three style losses ({setting})",
        caption="Gram: Gatys et al.; mean_std: per-channel mean and standard deviation (Li et "
        "al. 2017); mrf: nearest 3x3 neural patches by normalised cross-correlation (Li & Wand "
        "2016). Under each output: its own style loss at the end (clipped image).",
    )
    table = f"Style transfer ({setting}). Each run's own style loss at the start and end, and "
    table += "its content loss at the end.\n\n" + _figures.markdown_table(
        ["content", "style", "loss", "layers", "style start", "style end", "content end"], rows
    )
    _figures.save(args.workdir, "style_losses_transfer", figure, table)
    return table


def main(argv: list[str] | None = None) -> int:
    p = _figures.parser(__doc__.splitlines()[0], size=128, steps=200)
    p.add_argument("figure", choices=("texture", "transfer"))
    p.add_argument("--style-weight", type=float, default=1e3, help="beta (1e3)")
    p.add_argument("--directions", type=int, default=64, help="directions of the measure (64)")
    p.add_argument(
        "--noise-scale",
        type=float,
        default=DEFAULT_NOISE_SCALE,
        help=f"texture: grey levels of the initial noise ({DEFAULT_NOISE_SCALE:g})",
    )
    args = p.parse_args(argv)
    smallest = style_losses.MRF_PATCH * downsampling(MRF_LAYERS[-1])
    if args.figure == "transfer" and args.size < smallest:
        p.error(f"transfer: --size must be at least {smallest} (MRF's patches at {MRF_LAYERS[-1]})")
    params = _figures.load_params(args.weights)
    print((texture if args.figure == "texture" else transfer)(params, args))
    return 0


if __name__ == "__main__":
    from nstjax.errors import run_script

    sys.exit(run_script(main))
