"""``nstjax apply``: stylise images with trained feed-forward networks (one pass each)."""

import argparse
import time
from pathlib import Path

from nstjax.errors import NstjaxError

_SUFFIXES = (".png", ".jpg", ".jpeg")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "apply",
        help="stylise images with networks trained by 'nstjax train'",
        description="Stylise every content image with every network of a model folder.",
    )
    p.add_argument("--model", required=True, help="model folder written by 'nstjax train'")
    p.add_argument("--content", nargs="+", required=True, help="content image(s) or folder(s)")
    p.add_argument(
        "--output",
        required=True,
        help="output file (.png/.jpg) for one image and one network; a folder otherwise",
    )
    p.add_argument("--size", type=int, default=None, help="resize to this longer side first")
    p.add_argument("--batch-size", type=int, default=4, help="images per compiled call (4)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (latest)")
    p.set_defaults(func=main)


def _outputs(output: Path, contents: list[Path], names: list[str]) -> list[list[Path]]:
    """Output path per content image and network."""
    if len(contents) == 1 and len(names) == 1 and output.suffix.lower() in _SUFFIXES:
        return [[output]]
    if output.exists() and not output.is_dir():
        raise NstjaxError(f"--output '{output}': exists and is not a folder")
    return [[output / f"{c.stem}__{n}.png" for n in names] for c in contents]


def main(args: argparse.Namespace) -> int:
    from nstjax import image
    from nstjax.feedforward import apply, load_model

    if args.size is not None and args.size < 1:
        raise NstjaxError(f"--size must be >= 1, got {args.size}")
    if args.batch_size < 1:
        raise NstjaxError(f"--batch-size must be >= 1, got {args.batch_size}")
    paths = image.list_images(args.content, "content image")
    contents = [image.load_image(p, args.size, "content image") for p in paths]
    model = load_model(args.model, args.step)
    outputs = _outputs(Path(args.output), paths, model.names)
    started = time.perf_counter()
    results = apply(model, contents, batch_size=args.batch_size)
    elapsed = time.perf_counter() - started
    for files, stylised in zip(outputs, results):
        for path, pixels in zip(files, stylised):
            image.save_image(path, pixels, "output image")
    count = sum(len(f) for f in outputs)
    print(f"wrote {count} image(s) to {args.output} in {elapsed:.1f}s (compilation included)")
    return 0
