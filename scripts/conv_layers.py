"""Per-layer convolution speed, XLA:CPU against PyTorch (oneDNN), timed alternately in one run.

    python scripts/conv_layers.py --size 128 --output bench-out/conv_layers_128.json

For each 3x3 convolution of VGG-19 up to conv5_1 at its resolution for a ``--size`` image: the
forward convolution (with bias and ReLU) and the input gradient (the transposed convolution that
the image gradient needs), in XLA (jitted, kernel passed as an argument, NHWC as nstjax runs it)
and in PyTorch (NCHW, ``torch.nn.functional.conv2d`` and ``torch.nn.grad.conv2d_input``). Each
pair is timed alternately ``--rounds`` times; the table gives GFLOP/s of each and the ratio.
Shows whether the gap to PyTorch is in the convolutions themselves or around them. Random data:
speed does not depend on the values. Importing nstjax applies its default XLA flags (YNNPACK
fusions off, ``nstjax.xla_flags``); ``NSTJAX_XLA_DEFAULTS=0`` measures XLA:CPU's own defaults.
"""

import argparse
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5, help="calls per timed block")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch
    import torch.nn.functional as F

    from nstjax.architecture import LAYER_INDEX, LAYERS, block_of

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    dn = ("NHWC", "HWIO", "NHWC")

    @jax.jit
    def xla_forward(x, k, b):
        y = jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dn)
        return jax.nn.relu(y + b)

    @jax.jit
    def xla_input_grad(x, k, g):
        conv = lambda x: jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=dn)
        return jax.vjp(conv, x)[1](g)[0]

    def torch_forward(x, k, b):
        return F.relu(F.conv2d(x, k, b, padding=1))

    def torch_input_grad(shape, k, g):
        return torch.nn.grad.conv2d_input(shape, k, g, padding=1)

    def timed(fn, n):
        start = time.perf_counter()
        for _ in range(n):
            out = fn()
        if isinstance(out, jax.Array):
            out.block_until_ready()
        return (time.perf_counter() - start) / n

    rows = []
    totals = {"xla_fwd": 0.0, "torch_fwd": 0.0, "xla_bwd": 0.0, "torch_bwd": 0.0}
    for name, cin, cout in LAYERS[: LAYER_INDEX["conv5_1"] + 1]:
        s = args.size >> (block_of(name) - 1)
        n = args.batch
        x = rng.standard_normal((n, s, s, cin), np.float32)
        k = (rng.standard_normal((3, 3, cin, cout)) / np.sqrt(9 * cin)).astype(np.float32)
        b = rng.standard_normal((cout,), np.float32)
        g = rng.standard_normal((n, s, s, cout), np.float32)
        jx, jk, jb, jg = map(jnp.asarray, (x, k, b, g))
        tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        tk = torch.from_numpy(k.transpose(3, 2, 0, 1).copy())
        tb = torch.from_numpy(b)
        tg = torch.from_numpy(g.transpose(0, 3, 1, 2).copy())
        fns = {
            "xla_fwd": functools.partial(xla_forward, jx, jk, jb),
            "torch_fwd": functools.partial(torch_forward, tx, tk, tb),
            "xla_bwd": functools.partial(xla_input_grad, jx, jk, jg),
            "torch_bwd": functools.partial(torch_input_grad, tx.shape, tk, tg),
        }
        for fn in fns.values():  # compile / warm up
            timed(fn, 2)
        times = {key: [] for key in fns}
        for _ in range(args.rounds):
            for key, fn in fns.items():
                times[key].append(timed(fn, args.repeat))
        flops = 2.0 * n * s * s * cin * cout * 9
        row = {"layer": name, "hw": s, "cin": cin, "cout": cout, "gflop": flops / 1e9}
        for key in fns:
            med = statistics.median(times[key])
            totals[key] += med
            row[key + "_ms"] = med * 1e3
            row[key + "_gflops"] = flops / med / 1e9
        rows.append(row)
        print(
            f"{name:8s} {s:4d}px {cin:4d}->{cout:4d}  fwd: xla {row['xla_fwd_gflops']:6.1f} "
            f"torch {row['torch_fwd_gflops']:6.1f} GFLOP/s ({row['torch_fwd_ms'] / row['xla_fwd_ms']:.2f}x)"
            f"   input-grad: xla {row['xla_bwd_gflops']:6.1f} torch {row['torch_bwd_gflops']:6.1f}"
            f" ({row['torch_bwd_ms'] / row['xla_bwd_ms']:.2f}x)",
            flush=True,
        )
    print(
        "total ms: "
        + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in totals.items())
        + f"; xla/torch speed: fwd {totals['torch_fwd'] / totals['xla_fwd']:.2f}x, "
        f"input-grad {totals['torch_bwd'] / totals['xla_bwd']:.2f}x"
    )
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(
            json.dumps(
                {
                    "size": args.size,
                    "batch": args.batch,
                    "xla_flags": os.environ.get("XLA_FLAGS", ""),
                    "load_average": os.getloadavg(),
                    "totals_ms": {k: v * 1e3 for k, v in totals.items()},
                    "layers": rows,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
