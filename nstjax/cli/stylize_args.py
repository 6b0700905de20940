"""The flags of ``nstjax stylize``, their defaults read from :class:`nstjax.Run` and
:class:`nstjax.Options` (a flag a preset supplies has no default: not given means the preset's)."""

from nstjax.presets import PRESET_NAMES
from nstjax.run import (
    DEFAULT_LEARNING_RATES,
    DEFAULT_SIZE,
    DTYPES,
    INITS,
    OPTIMIZERS,
    POOLINGS,
    STYLE_LOSS_NAMES,
    Options,
    Run,
)


def add_arguments(p) -> None:
    """Adds every flag of ``nstjax stylize`` to the parser ``p``."""
    _io_arguments(p)
    _loss_arguments(p)
    _optimizer_arguments(p)
    _control_arguments(p)


def _io_arguments(p) -> None:
    p.add_argument(
        "--content",
        nargs="+",
        default=None,
        help="content image(s) or folder(s) (default: the shipped example photo)",
    )
    p.add_argument(
        "--style",
        nargs="+",
        default=None,
        help="style image(s) or folder(s) (default: the shipped example painting)",
    )
    p.add_argument(
        "--output",
        required=True,
        help="output file (.png/.jpg) for one pair; a folder when there are several pairs",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--preset",
        default="nstjax",
        help=f"{' | '.join(PRESET_NAMES)}: the objective and settings of a reference "
        "implementation (nstjax.presets): paper (Gatys et al. 2016's formulas), gatys (their "
        "PyTorch notebook), neural-style (jcjohnson's defaults), nstjax (this package's); the "
        "options marked 'preset' override it",
    )
    # default=None: "not given", so that the preset's value applies (nstjax's in brackets)
    p.add_argument("--size", type=int, help=f"longer side of the output (preset; {DEFAULT_SIZE})")
    p.add_argument("--save-every", type=int, default=0, help="save snapshots every N steps")
    p.add_argument(
        "--weights",
        default=None,
        help="VGG-19 weights (.h5 or .npz); default: $NSTJAX_WEIGHTS, the cache, or a download",
    )


def _loss_arguments(p) -> None:
    run, options = Run(), Options()
    p.add_argument("--content-weight", type=float, help=f"alpha (preset; {run.content_weight:g})")
    p.add_argument("--style-weight", type=float, help=f"beta (preset; {run.style_weight:g})")
    p.add_argument("--tv-weight", type=float, help=f"total variation (preset; {run.tv_weight:g})")
    p.add_argument(
        "--content-layers",
        help=f"comma-separated conv names (preset; {','.join(run.content_layers)})",
    )
    p.add_argument(
        "--style-layers", help=f"comma-separated conv names (preset; {','.join(run.style_layers)})"
    )
    p.add_argument(
        "--init",
        help=f"{' | '.join(INITS)} | PATH to an image (preset; {run.init}); noise: the "
        "network's mean colour plus Gaussian noise of --noise-scale grey levels",
    )
    p.add_argument(
        "--noise-scale",
        type=float,
        help=f"standard deviation of --init noise, grey levels 0-255 (preset; {run.noise_scale:g})",
    )
    p.add_argument("--seed", type=int, default=run.seed, help="seed of the noise initialisation")
    p.add_argument(
        "--pooling", choices=POOLINGS, help=f"VGG's 2x2 pooling (preset; {options.pooling})"
    )
    p.add_argument(
        "--style-loss",
        metavar="LOSS[:W],...",
        help="style loss, or a weighted mix such as gram:1,sliced_wasserstein:0.5; losses: "
        f"{', '.join(STYLE_LOSS_NAMES)} (preset; {run.style_loss})",
    )
    p.add_argument(
        "--normalize-gradients",
        action="store_true",
        help="L1-normalise each loss layer's gradient (as neural-style)",
    )


def _optimizer_arguments(p) -> None:
    options = Options()
    p.add_argument("--steps", type=int, help=f"optimisation steps (preset; {options.steps})")
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        help="adam, lbfgs (fixed step, as neural-style), lbfgs_wolfe (strong-Wolfe line search, "
        "first trial step f/|g|^2), lbfgs_wolfe_torch (the same with torch's first step: torch's "
        f"LBFGS(line_search_fn='strong_wolfe')) (preset; {options.optimizer})",
    )
    lrs = ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LEARNING_RATES.items())
    p.add_argument("--lr", type=float, help=f"step size (preset; by optimiser: {lrs})")
    p.add_argument(
        "--multiscale",
        default=None,
        metavar="SIZE:STEPS,...",
        help="coarse-to-fine schedule, e.g. 256:300,512:200 (instead of --size/--steps; preset)",
    )
    p.add_argument(
        "--upscale-detail",
        type=float,
        metavar="F",
        help="with --multiscale: start each later scale from the last one's image plus F times "
        "the content's detail between the two sizes (1: all of it; default "
        f"{Run().upscale_detail:g}: the upsampled image alone)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="most pairs per compiled batch (default: as many as fit in memory)",
    )
    p.add_argument(
        "--average-decay",
        type=float,
        help="return the moving average of each run's iterates with this decay in [0, 1) "
        f"(adam, lbfgs; crowsonkb's 0.99) (preset; {options.average_decay:g}: the last iterate)",
    )
    p.add_argument(
        "--lbfgs-history",
        type=int,
        help=f"curvature pairs kept by L-BFGS (preset; {options.lbfgs_history})",
    )
    run = Run()
    p.add_argument(
        "--loss-tolerance",
        type=float,
        default=run.loss_tolerance,
        help="stop a run once its loss changes by at most this fraction in a step (0: never)",
    )
    p.add_argument(
        "--grad-tolerance",
        type=float,
        default=run.grad_tolerance,
        help="stop a run once its largest gradient entry is at most this (0: never)",
    )
    p.add_argument("--dtype", choices=DTYPES, default=options.dtype, help="activation dtype")
    p.add_argument("--remat", action="store_true", help="recompute activations to save memory")


def _control_arguments(p) -> None:
    from nstjax.color import COLOR_MODES

    run = Run()
    p.add_argument(
        "--style-scale",
        type=float,
        default=run.style_scale,
        help="style image's longer side relative to the output's",
    )
    p.add_argument(
        "--style-blend",
        type=float,
        nargs="+",
        default=None,
        metavar="W",
        help="blend all styles into one target with these weights (one per style) "
        "instead of running every content x style pair",
    )
    p.add_argument(
        "--masks",
        nargs="+",
        default=None,
        metavar="MASK",
        help="spatial control: one mask image per style (white = that style's "
        "region); implies a blend of all styles",
    )
    p.add_argument(
        "--colors",
        choices=COLOR_MODES,
        default=run.colors,
        help="style: the style's colours; luminance: keep the content's colours; "
        "histogram: match the style's colours to the content first",
    )


_NUMBERS = {
    "content_weight": 0,
    "style_weight": 0,
    "tv_weight": 0,
    "noise_scale": 0,
    "upscale_detail": 0,
    "loss_tolerance": 0,
    "grad_tolerance": 0,
}
"""Float flags that must be finite and at least this (``None``: not given, the preset's)."""
_COUNTS = {"size": 1, "steps": 1, "lbfgs_history": 1, "batch_size": 1, "save_every": 0}
"""Integer flags and their least value (``None``: not given)."""


def _flag(name: str) -> str:
    return "--" + {"learning_rate": "lr"}.get(name, name).replace("_", "-")


def check(args) -> None:
    """Checks every value of ``nstjax stylize``'s flags that needs no file read.

    Raises:
        NstjaxError: one line naming the flag and its value.
    """
    from nstjax import validate
    from nstjax.architecture import check_layer_names
    from nstjax.style_mix import parse_style_loss

    for name, least in _COUNTS.items():
        if getattr(args, name) is not None:
            validate.integer(getattr(args, name), _flag(name), least)
    for name, least in _NUMBERS.items():
        if getattr(args, name) is not None:
            validate.number(getattr(args, name), _flag(name), minimum=least)
    if args.lr is not None:
        validate.number(args.lr, "--lr", positive=True)
    validate.number(args.style_scale, "--style-scale", positive=True)
    if args.style_blend is not None:
        validate.blend_weights(args.style_blend, "--style-blend")
    for name in ("content_layers", "style_layers"):
        if getattr(args, name) is not None:
            check_layer_names(validate.names(getattr(args, name), _flag(name)), _flag(name))
    _check_init(args.init)
    if args.style_loss is not None:
        parse_style_loss(args.style_loss, "--style-loss")


def _check_init(init) -> None:
    import os

    from nstjax.errors import NstjaxError

    if init is None or init in INITS or os.path.isfile(init):
        return
    what = "is a folder, not an image file" if os.path.isdir(init) else "no such image file"
    raise NstjaxError(f"--init {init!r}: not one of {', '.join(INITS)}, and {what}")


def check_image_sizes(runs, content_shapes, style_paths, size: int, style_scale: float) -> None:
    """Checks, from the files' headers, that every image can be read at its size and that the
    style images are large enough for the deepest layer; notes a content image upscaled more
    than twice.

    Raises:
        NstjaxError: naming ``--size`` or ``--style-scale``, whichever is at fault.
    """
    import sys

    from nstjax import image, resample, validate
    from nstjax.architecture import LAYER_NAMES, downsampling
    from nstjax.errors import NstjaxError
    from nstjax.run import layer_weight_vector

    out_shapes = [resample.long_side_shape(s, size) for s in content_shapes]
    validate.image_memory(out_shapes, "--size", size)
    style_side = validate.scaled_side(size, style_scale, "--style-scale")
    style_shapes = [resample.long_side_shape(image.image_shape(p), style_side) for p in style_paths]
    validate.image_memory(style_shapes, "--style-scale", style_scale)
    used = set()
    for run in runs:
        for layers in (run.content_layers, run.style_layers):
            used |= {i for i, w in enumerate(layer_weight_vector(layers, "layers")) if w > 0}
    deepest = LAYER_NAMES[max(used)] if used else LAYER_NAMES[0]
    need = downsampling(deepest)
    for path, (h, w) in zip(style_paths, style_shapes):
        if min(h, w) < need:
            raise NstjaxError(
                f"--style-scale {style_scale:g}: style image {path} would be {h}x{w} px, too "
                f"small for {deepest} (each side needs >= {need} px); raise --style-scale"
            )
    for shape, out in zip(content_shapes, out_shapes):
        if max(out) > 2 * max(shape):
            print(
                f"nstjax: note: a {shape[1]}x{shape[0]} content image is upscaled to "
                f"{out[1]}x{out[0]} (--size {size}); expect a blurry result",
                file=sys.stderr,
            )


def check_masks(paths, masks) -> None:
    """Refuses a mask that assigns its style no pixel (all black).

    Raises:
        NstjaxError: naming the mask file.
    """
    from nstjax.errors import NstjaxError

    for path, mask in zip(paths or [], masks):
        if not mask.max() > 0:
            raise NstjaxError(
                f"--masks {path}: all black, so its style gets no region (white marks it)"
            )
