"""``nstjax apply``: stylise images with trained feed-forward networks (one pass each).

As ``nstjax stylize``, everything that can be wrong is checked before an image is read or
anything compiles: the options, the model folder's config, the content files (from their
headers), the output names and locations, and whether the size fits in memory.
"""

import argparse
import time
from pathlib import Path

from nstjax.errors import NstjaxError


def register(subparsers) -> None:
    from nstjax.cli import HelpWithDefaults

    p = subparsers.add_parser(
        "apply",
        help="stylise images with networks trained by 'nstjax train'",
        description="Stylise every content image with every network of a model folder.",
        formatter_class=HelpWithDefaults,
    )
    p.add_argument("--model", required=True, help="model folder written by 'nstjax train'")
    p.add_argument("--content", nargs="+", required=True, help="content image(s) or folder(s)")
    p.add_argument(
        "--output",
        required=True,
        help="output file (.png/.jpg) for one image and one network; a folder otherwise",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument(
        "--size", type=int, default=None, help="resize to this longer side first (default: as is)"
    )
    p.add_argument("--batch-size", type=int, default=4, help="images per compiled call")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.set_defaults(func=main)


def _outputs(output: Path, contents: list[Path], names: list[str]) -> list[list[Path]]:
    """Output path per content image and network."""
    from nstjax import image, outputs

    count = len(contents) * len(names)  # any image name is a file (check_outputs judges it)
    if count == 1 and output.suffix.lower() in image.IMAGE_SUFFIXES:
        return [[output]]
    if output.suffix.lower() in image.IMAGE_SUFFIXES:
        raise NstjaxError(
            f"--output {output}: {len(contents)} image(s) x {len(names)} network(s) make "
            f"{count} results; name a folder, not an image file"
        )
    if output.exists() and not output.is_dir():
        raise NstjaxError(f"--output {output}: exists and is not a folder")
    labels = outputs.labels(contents, "content image")
    return [[output / f"{c}__{n}.png" for n in names] for c in labels]


def _check_memory(config, shapes, size, batch_size: int) -> None:
    from nstjax import validate
    from nstjax.batch import memory
    from nstjax.feedforward.inference import apply_bytes

    size = "(not given: the images' own size)" if size is None else size
    validate.image_memory(shapes, "--size", size)
    biggest = max(shapes, key=lambda s: s[0] * s[1])
    need = apply_bytes(config, biggest, min(batch_size, len(shapes)))
    have = memory.device_memory_bytes() * memory.BUDGET_FRACTION
    if need > have:
        raise NstjaxError(
            f"--size {size}: {config.num_networks} network(s) on {biggest[0]}x{biggest[1]} px "
            f"images need about {need / 1e9:.1f} GB, more than the {have / 1e9:.1f} GB this "
            "device may use; choose a smaller --size or --batch-size"
        )


def _plan(args) -> tuple[list[Path], list[list[Path]]]:
    """Checks everything that needs no pixel read; returns the content files and the output
    file of each content image and network."""
    from nstjax import image, outputs, resample, validate
    from nstjax.feedforward import config as config_lib
    from nstjax.feedforward.training import network_names

    if args.size is not None:
        validate.integer(args.size, "--size", 1)
    validate.integer(args.batch_size, "--batch-size", 1)
    if args.step is not None:
        validate.integer(args.step, "--step", 0)
    config = config_lib.load(args.model)
    try:
        config_lib.validate(config)
    except NstjaxError as e:
        raise NstjaxError(f"--model '{args.model}': config.json: {e}") from e
    paths = image.list_images(args.content, "content image")
    files = _outputs(Path(args.output), paths, network_names(config))
    outputs.check_outputs([f for row in files for f in row], args.overwrite)
    shapes = [image.image_shape(p, "content image") for p in paths]
    if args.size is not None:
        shapes = [resample.long_side_shape(s, args.size) for s in shapes]
    _check_memory(config, shapes, args.size, args.batch_size)
    return paths, files


def main(args: argparse.Namespace) -> int:
    from nstjax import image
    from nstjax.feedforward import apply, load_model

    paths, outputs = _plan(args)
    model = load_model(args.model, args.step)
    contents = [image.load_image(p, args.size, "content image") for p in paths]
    started = time.perf_counter()
    results = apply(model, contents, batch_size=args.batch_size)
    elapsed = time.perf_counter() - started
    for files, stylised in zip(outputs, results):
        for path, pixels in zip(files, stylised):
            image.save_image(path, pixels, "output image")
    count = sum(len(f) for f in outputs)
    print(f"wrote {count} image(s) to {args.output} in {elapsed:.1f}s (compilation included)")
    return 0
