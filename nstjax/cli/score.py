"""``nstjax score``: the quality measures of any image, including another program's output.

    nstjax score out.png other.png --content content.jpg --style style.jpg --json

Every image is read and every name checked before anything compiles. The content image is
resized to each output's size when it has another size (the official protocol expects content
and output of one size; the JSON says ``"content_resized": true``). The style image keeps its own
size, as in the official code, unless ``--style-size`` gives its long side (``nstjax stylize``
measures against the style at the output's long side).
"""

import argparse
import json
import math

from nstjax.cli import HelpWithDefaults
from nstjax.errors import NstjaxError


def register(subparsers) -> None:
    from nstjax.quality import DEFAULT_PROTOCOL, MEASURE_NAMES, PROTOCOLS

    p = subparsers.add_parser(
        "score",
        help="measure the quality of stylised images",
        description="Wang et al.'s content fidelity, global effects and local patterns, Gram, "
        "content and sliced-Wasserstein distances, SSIM and PSNR of each IMAGE against a "
        "content and a style image (docs/quality.md).",
        formatter_class=HelpWithDefaults,
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="the stylised images to score")
    p.add_argument("--content", required=True, help="the content image")
    p.add_argument("--style", required=True, help="the style image")
    p.add_argument("--json", action="store_true", help="one JSON object per image (a line each)")
    p.add_argument(
        "--measures", default=None, help=f"comma-separated subset of: {', '.join(MEASURE_NAMES)}"
    )
    p.add_argument(
        "--style-size", type=int, default=None, help="resize the style so its long side is N px"
    )
    p.add_argument("--protocol", choices=PROTOCOLS, default=DEFAULT_PROTOCOL, help="see docs")
    p.add_argument(
        "--weights",
        default=None,
        help="VGG-19 weights (.h5 or .npz); default: $NSTJAX_WEIGHTS, the cache, or a download",
    )
    p.set_defaults(func=main)


def _read(args):
    """Every image, read and checked (before anything compiles)."""
    from nstjax import image, resample, validate
    from nstjax.quality.protocol import MIN_SIDE

    if args.style_size is not None:
        if args.style_size < MIN_SIDE:
            raise NstjaxError(f"--style-size must be >= {MIN_SIDE}, got {args.style_size}")
        shape = resample.long_side_shape(
            image.image_shape(args.style, "--style image"), args.style_size
        )
        validate.image_memory([shape], "--style-size", args.style_size)
    outputs = [image.load_image(p, what="image") for p in args.images]
    content = image.load_image(args.content, what="--content image")
    style = image.load_image(args.style, args.style_size, what="--style image")
    for label, array in [*zip(args.images, outputs), (args.style, style)]:
        if min(array.shape[:2]) < MIN_SIDE:
            raise NstjaxError(
                f"{label}: {array.shape[0]}x{array.shape[1]} is too small to measure (the "
                f"measures need at least {MIN_SIDE} px a side)"
            )
    return outputs, content, style


def _scores(params, outputs, content, style, names, protocol) -> list[dict]:
    """Each output's measures plus ``content_resized``, one compiled call per output shape."""
    import numpy as np

    from nstjax import quality, resample

    by_shape: dict[tuple, list[int]] = {}
    for i, output in enumerate(outputs):
        by_shape.setdefault(output.shape, []).append(i)
    scores: list[dict] = [{} for _ in outputs]
    for shape, indices in by_shape.items():
        resized = content.shape != shape
        fitted = resample.resize(content, shape[:2]) if resized else content
        values = quality.measure(
            params,
            np.stack([outputs[i] for i in indices]),
            np.stack([fitted] * len(indices)),
            [style] * len(indices),
            names=names,
            protocol=protocol,
        )
        for j, i in enumerate(indices):
            scores[i] = {name: float(v[j]) for name, v in values.items()}
            scores[i]["content_resized"] = resized
    return scores


def _json_value(value):
    """JSON has no infinity or NaN (PSNR of identical images is infinite): those become null."""
    return value if isinstance(value, bool) or math.isfinite(value) else None


def main(args: argparse.Namespace) -> int:
    from nstjax import quality, vgg
    from nstjax.quality.table import format_table

    names = quality.check_names(args.measures, "--measures") if args.measures is not None else None
    outputs, content, style = _read(args)
    params = vgg.load_params(args.weights)
    scores = _scores(params, outputs, content, style, names, args.protocol)
    if args.json:
        for path, score in zip(args.images, scores):
            record = {"image": path, **{k: _json_value(v) for k, v in score.items()}}
            print(json.dumps(record))
        return 0
    print(format_table(args.images, scores))
    resized = [p for p, s in zip(args.images, scores) if s["content_resized"]]
    if resized:
        print(f"content resized to the size of: {', '.join(resized)}")
    return 0
