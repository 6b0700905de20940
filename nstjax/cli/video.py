"""``nstjax video``: a clip stylised with Ruder et al.'s temporal loss (:mod:`nstjax.video`).

The per-frame flags are ``nstjax stylize``'s (:mod:`nstjax.cli.stylize_args`, presets included);
everything that can be wrong with the input is checked before the weights load or anything
compiles, and nothing is written then.
"""

import argparse
import sys
import time
from pathlib import Path

from nstjax.cli import HelpWithDefaults, stylize_args
from nstjax.errors import NstjaxError


def register(subparsers) -> None:
    from nstjax.video import frames, modes

    p = subparsers.add_parser(
        "video",
        help="stylise a video clip, temporally consistent",
        description="Style transfer for a clip (a video file or a folder of frames) with Ruder "
        "et al.'s temporal loss: multipass (passes over the whole clip, each one batch), "
        "sequential (frame by frame) or independent (no temporal term). Without --optimizer "
        "the frames use L-BFGS, as the reference (a preset's Adam is replaced).",
        formatter_class=HelpWithDefaults,
    )
    p.add_argument(
        "--content",
        required=True,
        help=f"the clip: a folder of frames or a video file ({', '.join(frames.VIDEO_SUFFIXES)})",
    )
    p.add_argument("--style", nargs="+", default=None, help="style image(s) (default: the example)")
    p.add_argument("--output", required=True, help="a video file or a folder of PNG frames")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument(
        "--workdir", default=None, help="flows and per-frame results (default: OUTPUT.work)"
    )
    p.add_argument(
        "--mode", choices=modes.MODES, default=modes.DEFAULT_MODE, help="how frames are tied"
    )
    p.add_argument("--passes", type=int, default=modes.DEFAULT_PASSES, help="passes of multipass")
    weights = ", ".join(f"{k} {v:g}" for k, v in modes.TEMPORAL_WEIGHTS.items() if v)
    p.add_argument(
        "--temporal-weight", type=float, help=f"temporal loss weight (by mode: {weights})"
    )
    p.add_argument(
        "--blend", type=float, default=modes.DEFAULT_BLEND, help="multipass: blend weight"
    )
    p.add_argument(
        "--long-term",
        default="1",
        metavar="K,...",
        help="sequential: offsets of the earlier frames in the temporal loss (1: short-term)",
    )
    p.add_argument(
        "--later-steps",
        type=float,
        default=modes.DEFAULT_LATER_STEPS,
        help="sequential: fraction of --steps for the frames after the first",
    )
    p.add_argument("--preset", default="nstjax", help="the objective and settings (see stylize)")
    p.add_argument("--size", type=int, help="longer side of the frames (preset)")
    p.add_argument("--weights", default=None, help="VGG-19 weights (see stylize)")
    stylize_args._loss_arguments(p)
    stylize_args._optimizer_arguments(p)
    stylize_args._control_arguments(p)
    p.set_defaults(func=main, save_every=0, quality=False)  # stylize flags video has no use for


def _settings(args):
    from nstjax.video.modes import VideoSettings

    try:
        long_term = tuple(int(k) for k in args.long_term.split(","))
    except ValueError as e:
        raise NstjaxError(
            f"--long-term: expected comma-separated integers, got {args.long_term!r}"
        ) from e
    return VideoSettings(
        mode=args.mode,
        temporal_weight=args.temporal_weight,
        passes=args.passes,
        blend=args.blend,
        long_term=long_term,
        later_steps=args.later_steps,
    )


def _default_optimizer(args) -> None:
    """Without ``--optimizer``, a preset's Adam becomes L-BFGS (:data:`modes.DEFAULT_OPTIMIZER`,
    the reference's): the temporal modes need each frame near its optimum. A preset's L-BFGS
    variant is kept."""
    from nstjax import presets
    from nstjax.video import modes

    if args.optimizer is None:
        if presets.static_options(args.preset)["optimizer"] == "adam":
            args.optimizer = modes.DEFAULT_OPTIMIZER


def _check_flags(args) -> None:
    if args.masks is not None:
        raise NstjaxError("--masks: spatial masks are not supported for a clip")
    if len(args.style or [None]) > 1 and args.style_blend is None:
        raise NstjaxError("--style: a clip takes one style, or several with --style-blend")


def _planned(args):
    """The flags as a locked config (:mod:`nstjax.cli.stylize_config`), the style files, and
    the run without a shape (its static settings: size, steps, optimiser, ...)."""
    from nstjax import examples, image
    from nstjax.cli import stylize_config

    styles = [str(p) for p in image.list_images(args.style or [examples.STYLE], "style image")]
    config = stylize_config.from_flags(args, [args.content], styles)
    static = stylize_config.runs_of(config, [args.content], styles, {})[0]
    if len(stylize_config.scales(static)) > 1:
        raise NstjaxError("--multiscale: not supported for a clip; use --size and --steps")
    return config, styles, static


def _check_output(args) -> Path:
    from nstjax import validate
    from nstjax.video import frames

    output = Path(args.output)
    frames.check_output(output)
    if output.exists() and not args.overwrite:
        raise NstjaxError(f"--output {output}: exists (use --overwrite to replace it)")
    validate.output_folder(args.workdir or f"{output}.work", "--workdir")
    return output


def _inputs(args, style_paths, size: int, style_scale: float):
    """The clip at the output size, its frame rate, and the style images."""
    from nstjax import image, resample, validate
    from nstjax.video import frames

    first = frames.first_frame_shape(args.content)
    if first is not None:  # a frame at --size must fit before the clip is read at it
        validate.image_memory([resample.long_side_shape(first, size)], "--size", size)
    clip, fps = frames.read_clip(args.content, size)
    style_size = max(1, round(size * style_scale))
    styles = [image.load_image(p, style_size, "style image") for p in style_paths]
    return clip, fps, styles


def _run(config, args, styles, shape, n_frames: int):
    """The clip's run: the preset's fields at the frames' shape, the flags on top."""
    from nstjax import image
    from nstjax.cli import stylize_config
    from nstjax.run import INITS, validate_run

    shapes = {args.content: shape}
    planned = stylize_config.runs_of(config, [args.content], styles, shapes, shapes)[0]
    init = planned.values["init"]
    init = None if init in INITS else image.load_image(init, what="--init image")
    run = stylize_config.api_run(planned, [args.content], styles, init=init)
    validate_run(run, n_frames, len(styles))
    return run


def main(args: argparse.Namespace) -> int:
    from nstjax import vgg
    from nstjax.cli import stylize_config
    from nstjax.video import frames, modes

    _default_optimizer(args)
    stylize_args.check(args)
    _check_flags(args)
    config, style_paths, static = _planned(args)
    options = stylize_config.options(static, args)
    settings = _settings(args)
    output = _check_output(args)
    size = static.values["size"]
    clip, fps, styles = _inputs(args, style_paths, size, config.data.style_scale)
    modes.check_settings(settings, len(clip))
    run = _run(config, args, style_paths, clip.shape[1:3], len(clip))
    params = vgg.load_params(args.weights)

    started = time.perf_counter()
    workdir = args.workdir or f"{output}.work"
    report = lambda line: print(f"nstjax video: {settings.mode} {line}", file=sys.stderr)  # noqa: E731
    result = modes.stylize_clip(params, clip, styles, run, options, settings, workdir, report)
    frames.write_clip(output, result, fps)
    elapsed = time.perf_counter() - started
    print(
        f"wrote {len(result)} frame(s) to {output} in {elapsed:.1f}s ({settings.mode}; work folder {workdir})"
    )
    return 0
