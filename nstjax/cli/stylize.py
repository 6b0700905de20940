"""``nstjax stylize``: every content x style pair, optimised as one batch per output shape.

Everything that can be wrong with the input is checked before anything is compiled: options,
image files (from their headers), output names and locations, and whether the size can fit in
memory. Then the images are read, the weights loaded, and the plan run.
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from nstjax.cli import HelpWithDefaults, stylize_args, stylize_kept
from nstjax.errors import NstjaxError
from nstjax.run import (
    INITS,
    INTERACTIVE_CHUNK,
    Options,
    Run,
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "stylize",
        help="stylise content images with style images",
        description="Gatys-style transfer of every content x style pair, batched and compiled. "
        "Without --content/--style it stylises the example photo with the example painting "
        "that ship with nstjax.",
        formatter_class=HelpWithDefaults,
    )
    stylize_args.add_arguments(p)
    p.add_argument(
        "--quality",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure every result and print a table of the measures (docs/quality.md)",
    )
    p.set_defaults(func=main)


def _options(args) -> Options:
    from nstjax.run import validate_options

    options = Options(
        steps=args.steps,
        optimizer=args.optimizer,
        pooling=args.pooling,
        lbfgs_history=args.lbfgs_history,
        dtype=args.dtype,
        remat=args.remat,
        batch_size=args.batch_size,
        chunk=args.save_every or INTERACTIVE_CHUNK,
        quality=args.quality,
        average_decay=args.average_decay or 0.0,
    )
    try:
        validate_options(options)
    except NstjaxError as e:
        raise NstjaxError(f"--{e}") from e
    return options


def _inputs(args):
    from nstjax import examples, image

    contents = image.list_images(args.content or [examples.CONTENT], "content image")
    styles = image.list_images(args.style or [examples.STYLE], "style image")
    if args.style_blend is not None and len(args.style_blend) != len(styles):
        raise NstjaxError(
            f"--style-blend: {len(args.style_blend)} weight(s) for {len(styles)} style(s)"
        )
    if args.masks is not None and len(args.masks) != len(styles):
        raise NstjaxError(f"--masks: {len(args.masks)} mask(s) for {len(styles)} style(s)")
    return contents, styles


def _output_paths(output: Path, contents, styles, blended: bool) -> dict[tuple[int, int], Path]:
    """Output file per (content index, style index); style index -1 means "all styles blended"."""
    from nstjax import outputs

    content_names = outputs.labels(contents, "content image")
    style_names = outputs.labels(styles, "style image")
    style_keys = [(-1, "+".join(style_names))] if blended else list(enumerate(style_names))
    if len(contents) * len(style_keys) == 1:
        return {(0, style_keys[0][0]): output}
    if output.suffix.lower() in outputs.IMAGE_SUFFIXES:
        raise NstjaxError(
            f"--output {output}: {len(contents) * len(style_keys)} results need a folder, "
            "not an image file name"
        )
    return {
        (i, j): output / f"{c}__{s}.png" for i, c in enumerate(content_names) for j, s in style_keys
    }


def _snapshot_paths(path: Path, steps: int, every: int) -> list[Path]:
    return [path.with_name(f"{path.stem}_{s:05d}{path.suffix}") for s in range(every, steps, every)]


_PRESET_FLAGS = {
    "size": "size",
    "steps": "steps",
    "optimizer": "optimizer",
    "learning_rate": "lr",
    "content_weight": "content_weight",
    "style_weight": "style_weight",
    "tv_weight": "tv_weight",
    "content_layers": "content_layers",
    "style_layers": "style_layers",
    "init": "init",
    "noise_scale": "noise_scale",
    "pooling": "pooling",
    "lbfgs_history": "lbfgs_history",
    "multiscale": "multiscale",
    "style_loss": "style_loss",
    "average_decay": "average_decay",
}
"""Preset field -> the flag's attribute: the flags a preset supplies unless given."""


def _explicit(args) -> dict:
    """The preset fields the user gave on the command line."""
    from nstjax import schedule

    given = {field: getattr(args, attr) for field, attr in _PRESET_FLAGS.items()}
    if given["multiscale"] is not None:
        given["multiscale"] = tuple(schedule.parse_schedule(given["multiscale"]))
    return {k: v for k, v in given.items() if v is not None}


def _apply_preset(args) -> None:
    """Fills the static flags (size, steps, optimizer, ...) from ``--preset`` where not given,
    and checks for conflicts, before anything is read or compiled."""
    from nstjax import preset_settings

    args.explicit = _explicit(args)  # before the preset's values fill the flags
    options = preset_settings.static_settings(args.preset, args.explicit)  # needs no shape
    for field in ("size", "steps", "optimizer", "pooling", "lbfgs_history", "average_decay"):
        setattr(args, _PRESET_FLAGS[field], options[field])
    args.schedule = list(options["multiscale"] or [(args.size, args.steps)])


def _run_fields(args, shape: tuple[int, int]) -> dict:
    """The preset's Run fields for an output of ``shape`` with the given flags on top."""
    from nstjax import preset_settings

    return preset_settings.run_settings(args.preset, shape, args.explicit)


def _runs(args, outputs, masks, shapes) -> list[Run]:
    """One Run per output; ``shapes[i]``: content ``i``'s output shape (a preset's sums depend
    on it)."""
    blend = dict(enumerate(args.style_blend or [1.0] * max(len(masks), 1)))
    return [
        Run(
            content=i,
            style=blend if j < 0 else j,  # -1: every style, blended (with masks: one region each)
            seed=args.seed,
            style_scale=args.style_scale,
            colors=args.colors,
            masks=masks or None,
            normalize_gradients=args.normalize_gradients,
            loss_tolerance=args.loss_tolerance,
            grad_tolerance=args.grad_tolerance,
            **_run_fields(args, shapes[i]),  # the preset's style loss unless --style-loss
        )
        for i, j in outputs
    ]


class _Snapshots:
    """Saves ``OUT_<step>.png`` every ``every`` steps of a run (its own steps, all scales)."""

    def __init__(self, paths: list[Path], every: int, total: int):
        self.paths, self.every, self.total = paths, every, total

    def batch_started(self, batch):
        pass

    def batch_finished(self, batch, results):
        pass

    def chunk_done(self, batch, steps, metrics, images):
        from nstjax import image

        step = batch.first_step + steps
        if step % self.every or step >= self.total:
            return
        for item, img in zip(batch.items, images()):
            out = self.paths[item.key]
            image.save_image(out.with_name(f"{out.stem}_{step:05d}{out.suffix}"), img)


def _plans(runs, shapes, options, scales):
    from nstjax import api, resample, schedule

    if len(scales) > 1:
        return schedule.plan_schedule(runs, shapes, scales, options)
    shapes = [resample.long_side_shape(s, scales[0][0]) for s in shapes]
    return [api.plan_runs(runs, shapes, options)]


def _report(results, paths, optimizer: str) -> int:
    from nstjax import outputs

    failed = []
    for result, path in zip(results, paths):
        if result.failed_at is None:
            if not stylize_kept.save(path, result.image):  # said why and where it went
                failed.append(path.name)
                continue
            if result.converged_at is not None:
                print(f"nstjax: run {path.name} converged at step {result.converged_at}")
            continue
        failed_path = outputs.failed_path(path)
        stylize_kept.save(failed_path, result.image)
        r = result.run
        failed.append(path.name)
        print(
            f"nstjax: run {path.name} stopped at step {result.failed_at} on a non-finite value "
            f"(content-weight {r.content_weight}, style-weight {r.style_weight}, tv-weight "
            f"{r.tv_weight}, lr {r.step_size(optimizer)}); its last finite image is {failed_path}",
            file=sys.stderr,
        )
    return len(failed)


def _checked_outputs(args, content_paths, style_paths, total_steps) -> dict:
    """The output file of every pair, every file the command may write checked first."""
    from nstjax import outputs

    blended = args.style_blend is not None or args.masks is not None
    paths = _output_paths(Path(args.output), content_paths, style_paths, blended)
    failed = [outputs.failed_path(p) for p in paths.values()]
    to_write = [*paths.values(), *(f for f in failed if f.exists())]
    if args.save_every:
        every = args.save_every
        to_write += [s for p in paths.values() for s in _snapshot_paths(p, total_steps, every)]
    outputs.check_outputs(to_write, args.overwrite)
    return paths


def _read_masks(args, size: int) -> list:
    """The ``--masks`` images at the output size, ``[H, W]`` in [0, 1] (read before planning:
    they are part of the runs; the size is checked to fit in memory first)."""
    from nstjax import image, resample, validate

    if not args.masks:
        return []
    shapes = [
        resample.long_side_shape(image.image_shape(m, "--masks image"), size) for m in args.masks
    ]
    validate.image_memory(shapes, "--size", size)
    masks = [image.load_image(m, size, "--masks image").mean(axis=-1) for m in args.masks or []]
    stylize_args.check_masks(args.masks, masks)
    return masks


def _read_images(args, content_paths, style_paths, size):
    from nstjax import image

    contents = [image.load_image(p, size, "content image") for p in content_paths]
    style_size = max(1, round(size * args.style_scale))
    styles = [image.load_image(p, style_size, "style image") for p in style_paths]
    return contents, styles


def _execute(params, plans, scales, contents, styles, runs, observer):
    from nstjax import api, schedule

    if len(scales) > 1:
        return schedule.run_schedule(
            params, plans, scales, contents, styles, runs, observer=observer
        )
    results = api.run_plan(params, plans[0], contents, styles, observer=observer)
    return sorted(results, key=lambda r: r.key)


def main(args: argparse.Namespace) -> int:
    from nstjax import api, image, resample, vgg
    from nstjax.batch.plan import image_steps
    from nstjax.bench import bf16_speed
    from nstjax.progress import ProgressDisplay

    # Everything that can be wrong is checked before any pixel is read or anything compiles.
    stylize_args.check(args)
    _apply_preset(args)
    options = _options(args)
    scales = args.schedule
    size, total_steps = scales[-1][0], sum(steps for _, steps in scales)
    content_paths, style_paths = _inputs(args)
    paths_by_pair = _checked_outputs(args, content_paths, style_paths, total_steps)
    paths = list(paths_by_pair.values())
    content_shapes = [image.image_shape(p, "content image") for p in content_paths]
    out_shapes = [resample.long_side_shape(s, size) for s in content_shapes]
    runs = _runs(args, paths_by_pair, _read_masks(args, size), out_shapes)
    stylize_args.check_image_sizes(runs, content_shapes, style_paths, size, args.style_scale)
    if runs[0].init not in INITS:  # an image file (--init PATH)
        init = image.load_image(runs[0].init, what="--init image")
        runs = [dataclasses.replace(r, init=init) for r in runs]
    options = api.with_convolution(options)
    shapes = [content_shapes[r.content] for r in runs]
    plans = _plans(runs, shapes, options, scales)  # checks that every size fits
    bf16_speed.note_if_slower(options.dtype, options.convolution)  # measured once per machine

    contents, styles = _read_images(args, content_paths, style_paths, size)
    for run in runs:
        api.validate_run(run, len(contents), len(styles))
    params = vgg.load_params(args.weights)

    started = time.perf_counter()
    display = ProgressDisplay(sum(image_steps(p) for p in plans), "stylize")
    current = stylize_kept.Current(paths, total_steps)  # kept if interrupted
    observers = [display, current]
    if args.save_every:
        observers.append(_Snapshots(paths, args.save_every, total_steps))
    try:
        results = _execute(params, plans, scales, contents, styles, runs, api.Observers(*observers))
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM
        display.close(finished=False)
        e.add_note(current.keep(lambda done, to: _report(done, to, options.optimizer)))
        raise
    display.close()
    failed = _report(results, paths, options.optimizer)
    elapsed = time.perf_counter() - started
    where = args.output if len(paths) > 1 else paths[0]
    print(
        f"wrote {len(results) - failed} image(s) to {where} in {elapsed:.1f}s "
        f"({len(results) * total_steps / elapsed:.2f} img-it/s including compilation)"
        + (f"; {failed} run(s) failed (see above)" if failed else "")
    )
    if any(r.quality for r in results):
        from nstjax.quality.table import format_table

        print(format_table([p.name for p in paths], [r.quality for r in results]))
    return 1 if failed else 0
