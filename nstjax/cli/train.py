"""``nstjax train``: train feed-forward style networks (K styles or settings in one program)."""

import argparse
import dataclasses
import sys
import time

from nstjax.cli import HelpWithDefaults
from nstjax.errors import NstjaxError


def register(subparsers) -> None:
    from nstjax.feedforward.config import CROPS, TrainConfig
    from nstjax.sweep import distributed

    d = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    p = subparsers.add_parser(
        "train",
        help="train feed-forward style networks (Johnson et al.)",
        description="Train one transformation network per style or setting, all in one "
        "compiled step; resumes from the model folder's checkpoints.",
        formatter_class=HelpWithDefaults,
    )
    p.add_argument("--style", nargs="+", required=True, help="style image(s), one per network")
    p.add_argument("--content-dir", required=True, help="folder of content images (any sizes)")
    p.add_argument("--output", required=True, help="model folder (created; resumed if present)")
    p.add_argument("--size", type=int, default=d["size"], help="training crop side, >= 16 px")
    p.add_argument("--steps", type=int, default=d["steps"], help="optimisation steps")
    p.add_argument(
        "--batch-size",
        type=int,
        default=d["batch_size"],
        help="content images per step, shared by all networks (split over the devices)",
    )
    _add_loss_options(p, d)
    p.add_argument("--pooling", choices=("max", "avg"), default=d["pooling"], help="VGG's pooling")
    p.add_argument(
        "--style-size", type=int, default=None, help="style images' longer side (default: --size)"
    )
    p.add_argument(
        "--crop",
        choices=CROPS,
        default=d["crop"],
        help="random or center: a square crop after resizing the shorter side to --size; "
        "resize: warped to a square (Johnson et al.)",
    )
    _add_schedule_options(p, d)
    _add_network_axis(p, d["network_axis"])
    _add_network_options(p)
    p.add_argument("--weights", default=None, help="VGG-19 weights (.h5 or .npz)")
    distributed.add_options(p, "training run")
    p.set_defaults(func=main)


def _add_schedule_options(p: argparse.ArgumentParser, d: dict) -> None:
    """Held-out images, checkpoints, samples, the non-finite guard and the seed."""
    p.add_argument(
        "--holdout",
        type=int,
        default=d["holdout"],
        help="last N content images kept out of training for samples",
    )
    p.add_argument(
        "--save-every", type=int, default=d["save_every"], help="steps between checkpoints"
    )
    p.add_argument(
        "--sample-every",
        type=int,
        default=d["sample_every"],
        help="steps between samples and loss-curve updates (0: at the end)",
    )
    p.add_argument("--keep", type=int, default=d["keep"], help="most recent checkpoints kept")
    p.add_argument(
        "--max-nonfinite-steps",
        type=int,
        default=d["max_nonfinite_steps"],
        help="a network whose step is non-finite this many steps in a row is stopped "
        "(each such step is rejected; exit status 1 at the end)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=d["seed"],
        help="seeds the networks' initialisation, the data order and the crops",
    )


def _add_network_options(p: argparse.ArgumentParser) -> None:
    """The transformation network's shape, defaults from ``NetworkConfig``."""
    from nstjax.feedforward.config import NetworkConfig
    from nstjax.feedforward.network import NORMS, UPSAMPLES

    net = NetworkConfig()
    p.add_argument("--norm", choices=NORMS, default=net.norm, help="the network's normalisation")
    p.add_argument(
        "--upsample",
        choices=UPSAMPLES,
        default=net.upsample,
        help="the network's upsampling: resize then convolve, or transposed convolution",
    )
    p.add_argument("--width", type=int, default=net.width, help="first layer's channels")
    p.add_argument(
        "--residual-blocks",
        type=int,
        default=net.residual_blocks,
        help="residual blocks",
    )


def _add_loss_options(p: argparse.ArgumentParser, d: dict) -> None:
    """The per-network loss options (and the layers), defaults from ``TrainConfig``."""
    from nstjax.style_losses import STYLE_LOSSES

    for name in ("content_weight", "style_weight", "tv_weight"):
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=float,
            nargs="+",
            default=list(d[name]),
            metavar="W",
            help="one value, or one per network",
        )
    p.add_argument(
        "--lr",
        type=float,
        nargs="+",
        default=list(d["learning_rate"]),
        help="Adam step size, one or one per network",
    )
    p.add_argument(
        "--style-loss",
        nargs="+",
        default=list(d["style_loss"]),
        metavar="SPEC",
        help=f"style loss, one or one per network: a name ({', '.join(STYLE_LOSSES)}) or a "
        "mix such as gram:1,sliced_wasserstein:0.5",
    )
    p.add_argument(
        "--content-layers", default=",".join(d["content_layers"]), help="comma-separated conv names"
    )
    p.add_argument(
        "--style-layers", default=",".join(d["style_layers"]), help="comma-separated conv names"
    )


def _add_network_axis(p: argparse.ArgumentParser, default: str) -> None:
    from nstjax.feedforward.step import NETWORK_AXES

    p.add_argument(
        "--network-axis",
        choices=NETWORK_AXES,
        default=default,
        help="how K networks share a step: loop (one compiled network step run K times: each "
        "bit-identical to it trained alone, compiled once whatever K), unroll (K copies in one "
        "program: bit-identical, slow to compile), vmap (batched, equal up to rounding) or map "
        "(lax.map: compiled once, slow on CPU)",
    )


def _layers(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _config(args: argparse.Namespace):
    """The :class:`~nstjax.feedforward.TrainConfig` the flags describe (not yet checked)."""
    from nstjax.feedforward import NetworkConfig, TrainConfig

    return TrainConfig(
        styles=tuple(args.style),
        content_dir=args.content_dir,
        size=args.size,
        steps=args.steps,
        batch_size=args.batch_size,
        content_weight=tuple(args.content_weight),
        style_weight=tuple(args.style_weight),
        tv_weight=tuple(args.tv_weight),
        learning_rate=tuple(args.lr),
        style_loss=tuple(args.style_loss),
        content_layers=_layers(args.content_layers),
        style_layers=_layers(args.style_layers),
        pooling=args.pooling,
        style_size=args.style_size,
        crop=args.crop,
        holdout=args.holdout,
        seed=args.seed,
        save_every=args.save_every,
        keep=args.keep,
        sample_every=args.sample_every,
        max_nonfinite_steps=args.max_nonfinite_steps,
        network_axis=args.network_axis,
        network=NetworkConfig(
            norm=args.norm,
            upsample=args.upsample,
            width=args.width,
            residual_blocks=args.residual_blocks,
        ),
        weights=args.weights,
    )


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from nstjax.feedforward import train
    from nstjax.feedforward.config import validate
    from nstjax.sweep import distributed
    from nstjax.validate import output_folder

    config = _config(args)
    validate(config)  # every value, before anything is read or compiled
    output_folder(args.output, "--output")
    spec = distributed.resolve(args.coordinator, args.num_processes, args.process_id)
    cluster = distributed.initialize(spec)  # before JAX runs; one process: nothing
    started = time.perf_counter()
    result = train(config, args.output)
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
