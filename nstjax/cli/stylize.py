"""``nstjax stylize``: every content x style pair, optimised as one batch per output shape."""

import argparse
import math
import os
import sys
import time
from pathlib import Path

from nstjax.errors import NstjaxError


def register(subparsers) -> None:
    from nstjax import api

    run = api.Run()
    p = subparsers.add_parser(
        "stylize",
        help="stylise content images with style images",
        description="Gatys-style transfer of every content x style pair, batched and compiled.",
    )
    p.add_argument("--content", nargs="+", required=True, help="content image(s) or folder(s)")
    p.add_argument("--style", nargs="+", required=True, help="style image(s) or folder(s)")
    p.add_argument(
        "--output",
        required=True,
        help="output file (.png/.jpg) for one pair; a folder when there are several pairs",
    )
    p.add_argument("--size", type=int, default=512, help="longer side of the output (512)")
    p.add_argument("--steps", type=int, default=500, help="optimisation steps (500)")
    p.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam")
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"step size in 0-255 pixel units (adam {run.learning_rate}; lbfgs 1)",
    )
    p.add_argument("--content-weight", type=float, default=run.content_weight)
    p.add_argument("--style-weight", type=float, default=run.style_weight)
    p.add_argument("--tv-weight", type=float, default=run.tv_weight)
    p.add_argument(
        "--content-layers",
        default=",".join(api.DEFAULT_CONTENT_LAYERS),
        help="comma-separated conv names, e.g. conv4_2",
    )
    p.add_argument(
        "--style-layers",
        default=",".join(api.DEFAULT_STYLE_LAYERS),
        help="comma-separated conv names, e.g. conv1_1,conv2_1,conv3_1,conv4_1,conv5_1",
    )
    p.add_argument("--init", default="content", help="content | noise | style | PATH to an image")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise initialisation")
    p.add_argument("--pooling", choices=("max", "avg"), default="max")
    p.add_argument(
        "--style-scale",
        type=float,
        default=1.0,
        help="style image's longer side relative to the output's (1.0)",
    )
    p.add_argument(
        "--style-blend",
        type=float,
        nargs="+",
        default=None,
        metavar="W",
        help="blend all styles into one target with these weights (one per style) instead of "
        "running every content x style pair",
    )
    p.add_argument(
        "--masks",
        nargs="+",
        default=None,
        metavar="MASK",
        help="spatial control: one mask image per style (white = that style's region); "
        "implies a blend of all styles",
    )
    p.add_argument(
        "--colors",
        choices=("style", "luminance", "histogram"),
        default="style",
        help="style: the style's colours; luminance: keep the content's colours "
        "(luminance-only transfer); histogram: match the style's colours to the content first",
    )
    p.add_argument(
        "--normalize-gradients",
        action="store_true",
        help="L1-normalise each loss layer's gradient (as neural-style)",
    )
    p.add_argument(
        "--multiscale",
        default=None,
        metavar="SIZE:STEPS,...",
        help="coarse-to-fine schedule, e.g. 256:300,512:200,1024:100 (replaces --size/--steps)",
    )
    p.add_argument("--save-every", type=int, default=0, help="save snapshots every N steps")
    p.add_argument("--batch-size", type=int, default=0, help="most pairs per compiled batch")
    p.add_argument("--lbfgs-history", type=int, default=20)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--remat", action="store_true", help="recompute activations to save memory")
    p.add_argument("--weights", default=None, help="VGG-19 weights (.h5 or .npz)")
    p.set_defaults(func=main)


def _positive(value, option: str, integer: bool = True) -> None:
    ok = value > 0 and (integer or math.isfinite(value))
    if not ok:
        raise NstjaxError(f"--{option} must be > 0, got {value}")


def _check_writable(output: Path, folder: bool) -> None:
    target = output if folder else output.parent
    if not folder and output.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise NstjaxError(f"--output {output}: suffix must be .png, .jpg or .jpeg")
    if target.exists() and not target.is_dir():
        raise NstjaxError(f"--output {output}: {target} exists and is not a folder")
    probe = target
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise NstjaxError(f"--output {output}: {probe} is not writable")


def _output_paths(output: Path, contents, styles, blended: bool) -> dict[tuple[int, int], Path]:
    """Output file per (content index, style index); style index -1 means "all styles blended"."""
    style_keys = (
        [(-1, "+".join(s.stem for s in styles))]
        if blended
        else [(j, s.stem) for j, s in enumerate(styles)]
    )
    if len(contents) * len(style_keys) == 1:
        return {(0, style_keys[0][0]): output}
    return {
        (i, j): output / f"{c.stem}__{stem}.png"
        for i, c in enumerate(contents)
        for j, stem in style_keys
    }


def main(args: argparse.Namespace) -> int:
    from nstjax import api, image

    for option in ("size", "steps"):
        _positive(getattr(args, option), option)
    _positive(args.style_scale, "style-scale", integer=False)
    if args.lbfgs_history < 1:
        raise NstjaxError(f"--lbfgs-history must be >= 1, got {args.lbfgs_history}")
    if args.save_every < 0 or args.batch_size < 0:
        raise NstjaxError("--save-every and --batch-size must be >= 0")
    lr = (
        args.lr
        if args.lr is not None
        else (1.0 if args.optimizer == "lbfgs" else api.Run().learning_rate)
    )

    schedule = api.parse_schedule(args.multiscale) if args.multiscale else [(args.size, args.steps)]
    size, total_steps = schedule[-1][0], sum(steps for _, steps in schedule)
    content_paths = image.list_images(args.content, "content image")
    style_paths = image.list_images(args.style, "style image")
    blended = args.style_blend is not None or args.masks is not None
    if args.style_blend is not None and len(args.style_blend) != len(style_paths):
        raise NstjaxError(
            f"--style-blend: {len(args.style_blend)} weight(s) for {len(style_paths)} style(s)"
        )
    if args.masks is not None and len(args.masks) != len(style_paths):
        raise NstjaxError(f"--masks: {len(args.masks)} mask(s) for {len(style_paths)} style(s)")
    output = Path(args.output)
    outputs = _output_paths(output, content_paths, style_paths, blended)
    _check_writable(output, folder=len(outputs) > 1)

    init = args.init
    if init not in api.INITS:
        init = image.load_image(init, what="--init image")
    # At the final size; a multi-scale run resizes down from it for the coarser scales.
    contents = [image.load_image(p, size, "content image") for p in content_paths]
    style_size = max(1, round(size * args.style_scale))
    styles = [image.load_image(p, style_size, "style image") for p in style_paths]
    masks = [image.load_image(m, size, "--masks image").mean(axis=-1) for m in args.masks or []]
    blend = dict(enumerate(args.style_blend or [1.0] * len(style_paths)))
    runs = [
        api.Run(
            content=i,
            style=blend if j < 0 else j,  # -1: every style, blended (with masks: one region each)
            content_weight=args.content_weight,
            style_weight=args.style_weight,
            tv_weight=args.tv_weight,
            content_layers=args.content_layers,
            style_layers=args.style_layers,
            learning_rate=lr,
            init=init,
            seed=args.seed,
            style_scale=args.style_scale,
            colors=args.colors,
            masks=masks or None,
            normalize_gradients=args.normalize_gradients,
        )
        for i, j in outputs
    ]
    for run in runs:
        api.validate_run(run, len(contents), len(styles))

    from nstjax import vgg
    from nstjax.progress import ProgressBar

    params = vgg.load_params(args.weights)
    keys = list(outputs)
    batch = args.batch_size or len(runs)
    shapes = [contents[run.content].shape for run in runs]  # one compiled group per shape
    batches = sum(math.ceil(shapes.count(shape) / batch) for shape in set(shapes))
    bar = ProgressBar(total_steps * batches, min(batch, len(runs)), "stylize ")
    finished = [0]  # steps of the batches (and scales) already done, for the bar

    def progress(done, steps, metrics):
        bar.update(finished[0] + done, metrics[-1])
        if done == steps:
            finished[0] += steps

    def snapshot(step, indices, images):  # step: the run's own steps so far
        if step % args.save_every == 0 and step < total_steps:
            for i, img in zip(indices, images):
                out = outputs[keys[i]]
                image.save_image(out.with_name(f"{out.stem}_{step:05d}{out.suffix}"), img)

    started = time.perf_counter()
    options = dict(
        optimizer=args.optimizer,
        pooling=args.pooling,
        lbfgs_history=args.lbfgs_history,
        dtype=args.dtype,
        remat=args.remat,
        batch_size=args.batch_size or None,
        chunk=args.save_every or 10,
        progress=progress,
        on_snapshot=snapshot if args.save_every else None,
    )
    if len(schedule) > 1:
        results = api.stylize_multiscale(params, contents, styles, runs, schedule, **options)
    else:
        results = api.stylize_batch(params, contents, styles, runs, steps=args.steps, **options)
    bar.close()
    failed = 0
    for key, result in zip(keys, results):
        image.save_image(outputs[key], result.image)
        if result.failed_at is not None:
            failed += 1
            r = result.run
            print(
                f"nstjax: run {outputs[key].name} stopped at "
                f"step {result.failed_at}: non-finite loss (content-weight {r.content_weight}, "
                f"style-weight {r.style_weight}, tv-weight {r.tv_weight}, lr {r.learning_rate})",
                file=sys.stderr,
            )
    elapsed = time.perf_counter() - started
    print(
        f"wrote {len(results)} image(s) to {output} in {elapsed:.1f}s "
        f"({len(results) * total_steps / elapsed:.2f} img-it/s including compilation)"
    )
    return 1 if failed else 0
