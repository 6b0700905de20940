"""``nstjax train``: train feed-forward style networks (K styles or settings in one program).

    nstjax train --style starry.jpg --content-dir photos/ --output models/starry
    nstjax train --config configs/train.py:quick --output /tmp/model --config.steps=20

A training config is a ConfigDict of :class:`~nstjax.feedforward.TrainConfig`'s fields
(:func:`nstjax.feedforward.config.default_config`, the one source of their defaults), from a
config file (``--config FILE.py[:ARG]``) or the defaults. The flags and ``--config.FIELD=VALUE``
override its fields, in that order; nothing is copied field by field.
"""

import argparse
import sys
import time

from nstjax.cli import HelpWithDefaults
from nstjax.errors import NstjaxError

FLAG_FIELDS = {
    "style": "styles",
    "content_dir": "content_dir",
    "size": "size",
    "steps": "steps",
    "batch_size": "batch_size",
    "content_weight": "content_weight",
    "style_weight": "style_weight",
    "tv_weight": "tv_weight",
    "lr": "learning_rate",
    "style_loss": "style_loss",
    "content_layers": "content_layers",
    "style_layers": "style_layers",
    "pooling": "pooling",
    "style_size": "style_size",
    "crop": "crop",
    "holdout": "holdout",
    "save_every": "save_every",
    "sample_every": "sample_every",
    "keep": "keep",
    "max_nonfinite_steps": "max_nonfinite_steps",
    "seed": "seed",
    "network_axis": "network_axis",
    "norm": "network.norm",
    "upsample": "network.upsample",
    "width": "network.width",
    "residual_blocks": "network.residual_blocks",
    "weights": "weights",
}
"""Flag (its argparse name) -> the training config field it overrides when given."""


def register(subparsers) -> None:
    from nstjax.feedforward.config import CROPS, default_config
    from nstjax.run import POOLINGS
    from nstjax.sweep import distributed

    d = default_config()
    p = subparsers.add_parser(
        "train",
        help="train feed-forward style networks (Johnson et al.)",
        description="Train one transformation network per style or setting, all in one "
        "compiled step; resumes from the model folder's checkpoints. The training config "
        "(--config FILE.py[:ARG], else the defaults) takes the flags and --config.FIELD=VALUE "
        "overrides on top; a flag not given keeps the config's value (its default shown).",
        formatter_class=HelpWithDefaults,
    )
    p.add_argument("--config", default=None, help="training config file, FILE.py[:ARG]")
    p.add_argument("--style", nargs="+", help="style image(s), one per network (styles)")
    p.add_argument("--content-dir", help="folder of content images, any sizes (content_dir)")
    p.add_argument("--output", required=True, help="model folder (created; resumed if present)")
    p.add_argument("--size", type=int, help=f"training crop side, >= 16 px (default: {d.size})")
    p.add_argument("--steps", type=int, help=f"optimisation steps (default: {d.steps})")
    p.add_argument(
        "--batch-size",
        type=int,
        help=f"content images per step, shared by all networks (split over the devices) "
        f"(default: {d.batch_size})",
    )
    _add_loss_options(p, d)
    p.add_argument("--pooling", choices=POOLINGS, help=f"VGG's pooling (default: {d.pooling})")
    p.add_argument("--style-size", type=int, help="style images' longer side (default: --size)")
    p.add_argument(
        "--crop",
        choices=CROPS,
        help="random or center: a square crop after resizing the shorter side to --size; "
        f"resize: warped to a square (Johnson et al.) (default: {d.crop})",
    )
    _add_schedule_options(p, d)
    _add_network_axis(p, d.network_axis)
    _add_network_options(p, d.network)
    p.add_argument("--weights", help="VGG-19 weights (.h5 or .npz)")
    distributed.add_options(p, "training run")
    p.set_defaults(func=main)


def _add_schedule_options(p: argparse.ArgumentParser, d) -> None:
    """Held-out images, checkpoints, samples, the non-finite guard and the seed."""
    p.add_argument(
        "--holdout",
        type=int,
        help=f"last N content images kept out of training for samples (default: {d.holdout})",
    )
    p.add_argument(
        "--save-every", type=int, help=f"steps between checkpoints (default: {d.save_every})"
    )
    p.add_argument(
        "--sample-every",
        type=int,
        help=f"steps between samples and loss-curve updates, 0: at the end (default: {d.sample_every})",
    )
    p.add_argument("--keep", type=int, help=f"most recent checkpoints kept (default: {d.keep})")
    p.add_argument(
        "--max-nonfinite-steps",
        type=int,
        help="a network whose step is non-finite this many steps in a row is stopped "
        f"(each such step is rejected; exit status 1 at the end) (default: {d.max_nonfinite_steps})",
    )
    p.add_argument(
        "--seed",
        type=int,
        help=f"seeds the networks' initialisation, the data order and the crops (default: {d.seed})",
    )


def _add_network_options(p: argparse.ArgumentParser, net) -> None:
    """The transformation network's shape (the config's ``network`` group)."""
    from nstjax.feedforward.network import NORMS, UPSAMPLES

    p.add_argument(
        "--norm", choices=NORMS, help=f"the network's normalisation (default: {net.norm})"
    )
    p.add_argument(
        "--upsample",
        choices=UPSAMPLES,
        help="the network's upsampling: resize then convolve, or transposed convolution "
        f"(default: {net.upsample})",
    )
    p.add_argument("--width", type=int, help=f"first layer's channels (default: {net.width})")
    p.add_argument(
        "--residual-blocks", type=int, help=f"residual blocks (default: {net.residual_blocks})"
    )


def _add_loss_options(p: argparse.ArgumentParser, d) -> None:
    """The per-network loss options (and the layers)."""
    from nstjax.style_losses import STYLE_LOSSES

    for name in ("content_weight", "style_weight", "tv_weight"):
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            nargs="+",
            metavar="W",
            help=f"one value, or one per network (default: {' '.join(f'{w:g}' for w in d[name])})",
        )
    p.add_argument(
        "--lr",
        type=float,
        nargs="+",
        help=f"Adam step size, one or one per network (default: {' '.join(map(str, d.learning_rate))})",
    )
    p.add_argument(
        "--style-loss",
        nargs="+",
        metavar="SPEC",
        help=f"style loss, one or one per network: a name ({', '.join(STYLE_LOSSES)}) or a "
        f"mix such as gram:1,sliced_wasserstein:0.5 (default: {' '.join(d.style_loss)})",
    )
    p.add_argument(
        "--content-layers",
        help=f"comma-separated conv names (default: {','.join(d.content_layers)})",
    )
    p.add_argument(
        "--style-layers", help=f"comma-separated conv names (default: {','.join(d.style_layers)})"
    )


def _add_network_axis(p: argparse.ArgumentParser, default: str) -> None:
    from nstjax.feedforward.step import NETWORK_AXES

    p.add_argument(
        "--network-axis",
        choices=NETWORK_AXES,
        help="how K networks share a step: loop (one compiled network step run K times: each "
        "bit-identical to it trained alone, compiled once whatever K), unroll (K copies in one "
        "program: bit-identical, slow to compile), vmap (batched, equal up to rounding) or map "
        f"(lax.map: compiled once, slow on CPU) (default: {default})",
    )


def _layers(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _config(args: argparse.Namespace):
    """The :class:`~nstjax.feedforward.TrainConfig` of ``--config`` (or the defaults) with the
    given flags and ``--config.FIELD=VALUE`` overrides on top (not yet checked)."""
    from nstjax.config import apply_override, load_config
    from nstjax.feedforward.config import default_config, from_config

    if args.config:
        config = load_config(args.config)
    else:
        config = default_config()
        config.lock()
    for flag, path in FLAG_FIELDS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if flag in ("content_layers", "style_layers"):
            value = _layers(value)
        *groups, field = path.split(".")
        node = config
        for group in groups:
            node = node[group]
        node[field] = value
    for item in getattr(args, "config_overrides", []):
        apply_override(config, item)
    return from_config(config)


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from nstjax.feedforward import train
    from nstjax.feedforward.checkpoint import resume_note
    from nstjax.feedforward.config import validate
    from nstjax.sweep import distributed
    from nstjax.validate import output_folder

    config = _config(args)
    validate(config)  # every value, before anything is read or compiled
    output_folder(args.output, "--output")
    spec = distributed.resolve(args.coordinator, args.num_processes, args.process_id)
    cluster = distributed.initialize(spec)  # before JAX runs; one process: nothing
    started = time.perf_counter()
    try:
        result = train(config, args.output)
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: say what a rerun resumes from
        e.add_note(resume_note(args.output))
        raise
    if not len(result.history):
        raise NstjaxError("nothing trained")
    rows = result.history[-1]
    finite = rows[np.all(np.isfinite(rows), axis=1)]
    final = f"{finite[:, 0].mean():.4g}" if len(finite) else "not finite"
    who = f"process {cluster.process_id}: " if cluster.num_processes > 1 else ""
    print(
        f"{who}trained {len(result.names)} network(s) for {config.steps} steps into {args.output} in "
        f"{time.perf_counter() - started:.0f}s (final loss {final})"
    )
    counts = result.rejected.sum(axis=0)
    if counts.any():
        text = ", ".join(f"{n} {c}" for n, c in zip(result.names, counts) if c)
        print(f"non-finite steps rejected: {text}", file=sys.stderr)
    if result.stopped:
        print(
            f"nstjax: error: network(s) {', '.join(result.stopped)} stopped after "
            f"{config.max_nonfinite_steps} non-finite steps in a row (the others trained; "
            f"checkpoints, samples and loss curve saved in {args.output})",
            file=sys.stderr,
        )
        return 1
    return 0
