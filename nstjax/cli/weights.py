"""``nstjax weights {fetch,info,convert}``: download, inspect and convert the VGG-19 weights."""

import argparse

from nstjax import weights


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``weights`` subcommand and its ``fetch``, ``info`` and ``convert`` actions.

    Args:
        subparsers: the top-level parser's subparsers.
    """
    parser = subparsers.add_parser(
        "weights",
        help="download, inspect or convert the VGG-19 weights",
        description="Download, inspect or convert the VGG-19 (Caffe) weights.",
    )
    actions = parser.add_subparsers(dest="weights_command", required=True)

    fetch = actions.add_parser("fetch", help="download the weights into the cache and convert them")
    fetch.add_argument(
        "--url", help=f"download from here (default ${weights.ENV_URL} or {weights.WEIGHTS_URL})"
    )
    fetch.add_argument(
        "--force", action="store_true", help="download even if a good copy is already cached"
    )
    fetch.set_defaults(func=_fetch)

    info = actions.add_parser("info", help="say where the weights come from")
    info.add_argument(
        "--path", help=f"an .h5 or .npz weights file (default ${weights.ENV_WEIGHTS})"
    )
    info.set_defaults(func=_info)

    convert = actions.add_parser("convert", help="convert the Keras .h5 file into the .npz cache")
    convert.add_argument("h5", metavar="H5", help="the Keras-layout VGG-19 .h5 file")
    convert.add_argument("--output", metavar="NPZ", help="where to write (default: the cache)")
    convert.add_argument(
        "--no-verify", action="store_true", help="accept an .h5 whose md5 is not the canonical one"
    )
    convert.set_defaults(func=_convert)


def _fetch(args: argparse.Namespace) -> int:
    from urllib.parse import urlparse

    from nstjax.errors import NstjaxError

    if args.url is not None and urlparse(args.url).scheme not in ("http", "https"):
        raise NstjaxError(
            f"--url {args.url!r}: must be an http:// or https:// address (for a local .h5, "
            "use 'nstjax weights convert FILE.h5')"
        )
    h5 = weights.fetch(url=args.url, force=args.force)
    print(h5)
    print(weights.convert(h5))
    return 0


def _info(args: argparse.Namespace) -> int:
    info = weights.describe(args.path)
    pre = info["preprocess"]
    print(f"source:      {info['source']}")
    print(f"path:        {info['path']}")
    print(f"npz:         {info['npz'] or '- (the .h5 is read directly; the cache is not used)'}")
    print(f"md5:         {info['md5']}")
    print(f"layers:      {info['layers']}")
    print(f"parameters:  {info['parameters']:,}")
    print(
        f"preprocess:  {pre['name']}: {pre['channel_order']}, scale {pre['scale']:g}, "
        f"mean (RGB) {pre['mean_rgb']}, std (RGB) {pre['std_rgb']}"
    )
    return 0


def _convert(args: argparse.Namespace) -> int:
    from nstjax import validate
    from nstjax.errors import NstjaxError

    if args.output is not None:
        if not args.output.endswith(".npz"):
            raise NstjaxError(f"--output {args.output}: must end in .npz")
        validate.writable_location(args.output, "--output")
    print(weights.convert(args.h5, args.output, verify_md5=not args.no_verify))
    return 0
