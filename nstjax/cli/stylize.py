"""``nstjax stylize``: every content x style pair, optimised as one batch per output shape.

The flags become a locked config whose one expansion gives the runs
(:mod:`nstjax.cli.stylize_config`, :func:`nstjax.sweep.expand.expand`), as a sweep's do.
Everything that can be wrong with the input is checked before anything is compiled: options,
image files (from their headers), output names and locations, and whether the size can fit in
memory. Then the images are read, the weights loaded, and the plan run.
"""

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from nstjax.cli import HelpWithDefaults, stylize_args, stylize_config, stylize_kept
from nstjax.errors import NstjaxError
from nstjax.run import INITS, Options


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


def _inputs(args):
    from nstjax import examples, image

    contents = image.list_images(args.content or [examples.CONTENT], "content image")
    styles = image.list_images(args.style or [examples.STYLE], "style image")
    return contents, styles


def _output_paths(output: Path, contents, styles, blended: bool) -> dict[tuple[int, int], Path]:
    """Output file per (content index, style index); style index -1 means "all styles blended"."""
    from nstjax import image, outputs

    content_names = outputs.labels(contents, "content image")
    style_names = outputs.labels(styles, "style image")
    style_keys = [(-1, "+".join(style_names))] if blended else list(enumerate(style_names))
    if len(contents) * len(style_keys) == 1:
        return {(0, style_keys[0][0]): output}
    if output.suffix.lower() in image.IMAGE_SUFFIXES:  # any image name, even one not written
        raise NstjaxError(
            f"--output {output}: {len(contents) * len(style_keys)} results need a folder, "
            "not an image file name"
        )
    return {
        (i, j): output / f"{c}__{s}.png" for i, c in enumerate(content_names) for j, s in style_keys
    }


def _snapshot_paths(path: Path, steps: int, every: int) -> list[Path]:
    return [path.with_name(f"{path.stem}_{s:05d}{path.suffix}") for s in range(every, steps, every)]


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


def _checked_outputs(args, content_paths, style_paths, blended: bool, total_steps) -> dict:
    """The output file of every pair, every file the command may write checked first."""
    from nstjax import outputs

    paths = _output_paths(Path(args.output), content_paths, style_paths, blended)
    failed = [outputs.failed_path(p) for p in paths.values()]
    to_write = [*paths.values(), *(f for f in failed if f.exists())]
    if args.save_every:
        every = args.save_every
        to_write += [s for p in paths.values() for s in _snapshot_paths(p, total_steps, every)]
    outputs.check_outputs(to_write, args.overwrite)
    return paths


def _read_masks(mask_paths, size: int) -> list:
    """The ``--masks`` images at the output size, ``[H, W]`` in [0, 1] (read before planning:
    they are part of the runs; the size is checked to fit in memory first)."""
    from nstjax import image, resample, validate

    if not mask_paths:
        return []
    shapes = [
        resample.long_side_shape(image.image_shape(m, "--masks image"), size) for m in mask_paths
    ]
    validate.image_memory(shapes, "--size", size)
    masks = [image.load_image(m, size, "--masks image").mean(axis=-1) for m in mask_paths]
    stylize_args.check_masks(mask_paths, masks)
    return masks


def _read_images(content_paths, style_paths, size: int, style_scale: float):
    from nstjax import image

    contents = [image.load_image(p, size, "content image") for p in content_paths]
    style_size = max(1, round(size * style_scale))
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


@dataclasses.dataclass
class _Work:
    """What ``nstjax stylize`` will do, every input checked: the runs, their options and
    schedule, the output files, and the images' files."""

    runs: list
    options: Options
    scales: list
    paths: list
    shapes: list
    content_paths: list
    style_paths: list


def _prepare(args: argparse.Namespace) -> _Work:
    """The flags as a locked config, expanded into runs, checked and planned (nothing read but
    the images' headers and the masks, nothing compiled)."""
    from nstjax import api, image, weights

    stylize_args.check(args)
    content_paths, style_paths = _inputs(args)
    contents, styles = [str(p) for p in content_paths], [str(p) for p in style_paths]
    config = stylize_config.from_flags(args, contents, styles)
    shapes = [image.image_shape(p, "content image") for p in content_paths]
    runs = stylize_config.runs_of(config, contents, styles, dict(zip(contents, shapes)))
    scales = stylize_config.scales(runs[0])
    size, total_steps = scales[-1][0], sum(steps for _, steps in scales)
    blended = bool(runs[0].blend)
    paths = _checked_outputs(args, content_paths, style_paths, blended, total_steps)
    options = stylize_config.options(runs[0], args)
    masks = _read_masks(runs[0].masks, size)
    api_runs = [stylize_config.api_run(r, contents, styles, masks=masks) for r in runs]
    stylize_args.check_image_sizes(api_runs, shapes, style_paths, size, config.data.style_scale)
    if api_runs[0].init not in INITS:  # an image file (--init PATH)
        init = image.load_image(api_runs[0].init, what="--init image")
        api_runs = [dataclasses.replace(r, init=init) for r in api_runs]
    if args.weights:  # a file named here must be there now, before anything builds
        weights.locate(args.weights)
    options = api.with_convolution(options)
    run_shapes = [shapes[r.content] for r in api_runs]  # full size: the planner scales them
    paths = list(paths.values())
    return _Work(api_runs, options, scales, paths, run_shapes, content_paths, style_paths)


def main(args: argparse.Namespace) -> int:
    from nstjax import api, vgg
    from nstjax.batch.plan import image_steps
    from nstjax.bench import bf16_speed
    from nstjax.progress import ProgressDisplay

    # Everything that can be wrong is checked before any pixel is read or anything compiles.
    work = _prepare(args)
    runs, options, scales, paths = work.runs, work.options, work.scales, work.paths
    size, total_steps = scales[-1][0], sum(steps for _, steps in scales)
    plans = _plans(runs, work.shapes, options, scales)  # checks that every size fits

    style_scale = runs[0].style_scale
    contents, styles = _read_images(work.content_paths, work.style_paths, size, style_scale)
    for run in runs:
        api.validate_run(run, len(contents), len(styles))
    params = vgg.load_params(args.weights)
    bf16_speed.note_if_slower(options.dtype, options.convolution)  # measured once per machine

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
