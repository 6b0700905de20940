"""Same-run comparison of nstjax with a straightforward PyTorch implementation of the same objective.

    NSTJAX_WEIGHTS=../shared/weights/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 \
        python scripts/compare_torch.py --output bench-out/compare_torch.json

The reference is :mod:`nstjax.bench.torch_reference` (torch, ``pip install nstjax[torch]``); the
alternating timing and the loss checks are :mod:`nstjax.bench.compare`. This script parses the
options, runs every case and writes the JSON record; it exits 1 when some case's losses disagree.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from nstjax.bench import compare

DEFAULT_CASES = ("128x1", "256x1", "128x8")


def _parser() -> argparse.ArgumentParser:
    d = compare.Settings()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), help="SIZExBATCH")
    p.add_argument("--optimizers", nargs="+", default=["adam", "lbfgs"])
    p.add_argument("--iterations", type=int, default=d.iterations, help="steps per timed block")
    p.add_argument("--rounds", type=int, default=d.rounds, help="alternating blocks per side")
    p.add_argument("--warmup", type=int, default=d.warmup, help="untimed steps on each side")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam step in 0-255 pixel units")
    p.add_argument("--lbfgs-history", type=int, default=d.lbfgs_history)
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads")
    p.add_argument("--device", default=d.device, help="the PyTorch side's device (cpu, cuda)")
    p.add_argument("--loss-rtol", type=float, default=d.loss_rtol)
    p.add_argument("--images", type=Path, default=None, help="folder of content images")
    p.add_argument("--style", type=Path, default=None, help="style image")
    p.add_argument("--weights", default=None, help="the VGG-19 .h5 (default $NSTJAX_WEIGHTS)")
    p.add_argument("--output", type=Path, default=Path("compare_torch.json"))
    p.add_argument(
        "--convolution",
        choices=("xla", "flipped", "onednn"),
        default=None,
        help="nstjax's convolution (default: nstjax.kernels.choose())",
    )
    return p


def _line(rec: dict) -> str:
    return (
        f"{rec['size']:4d} px batch {rec['batch']:2d} {rec['optimizer']:5s}: "
        f"torch {rec['torch_s_per_image_iteration'] * 1e3:7.1f} ms/img-it, "
        f"nstjax {rec['nstjax_s_per_image_iteration'] * 1e3:7.1f} ms/img-it, "
        f"ratio {rec['ratio_median_of_rounds']:.2f}x "
        f"(of medians {rec['ratio_of_medians']:.2f}x, of best {rec['ratio_of_best']:.2f}x); "
        f"final loss rel diff {rec['final_rel_diff_max']:.2%} "
        f"(step 0 {rec['step0_rel_diff_max']:.1e}) "
        f"{'ok' if rec['losses_agree'] else 'DISAGREE'}"
    )


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)

    from nstjax import kernels, vgg, weights

    h5 = args.weights or os.environ.get(weights.ENV_WEIGHTS)
    if not h5 or not str(h5).endswith(".h5"):
        parser.error("pass --weights PATH.h5 or set NSTJAX_WEIGHTS to the .h5 file")
    settings = compare.Settings(
        iterations=args.iterations,
        rounds=args.rounds,
        warmup=args.warmup,
        lr=args.lr,
        lbfgs_history=args.lbfgs_history,
        threads=args.threads,
        device=args.device,
        loss_rtol=args.loss_rtol,
        images=args.images,
        style=args.style,
    )
    cases = [compare.parse_case(case) for case in args.cases]  # all checked before any runs
    convolution = args.convolution or kernels.choose()
    params = vgg.prepare(vgg.load_params(h5), convolution)
    print(f"nstjax convolution: {convolution}")
    info = compare.machine(args.threads)
    print(f"{info['cpu']}, {info['cpu_count']} cores, load {info['load_average_at_start']}")
    if info["load_average_at_start"][0] > 0.5 * (os.cpu_count() or 1):
        print(
            "warning: the machine is busy; PyTorch's OpenMP threads slow down far more than XLA's "
            "under contention, so ratios measured now flatter nstjax",
            file=sys.stderr,
        )
    records = []
    for size, batch in cases:
        for optimizer in args.optimizers:
            rec = compare.compare_case(settings, params, convolution, h5, size, batch, optimizer)
            records.append(rec)
            print(_line(rec), flush=True)
    info["load_average_at_end"] = list(os.getloadavg())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": info,
        "convolution": convolution,
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": records,
    }
    args.output.write_text(json.dumps(record, indent=2))
    print(f"wrote {args.output}")
    return 0 if all(r["losses_agree"] for r in records) else 1


if __name__ == "__main__":
    from nstjax.errors import run_script

    sys.exit(run_script(main))
