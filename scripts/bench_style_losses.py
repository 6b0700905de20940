"""Cost of one loss-and-gradient evaluation with each style loss, relative to the Gram loss.

What is timed is the compiled heart of an optimisation step: VGG-19 features of ``--runs``
images (vmapped), the content loss at conv4_2 plus one style loss at conv1_1 ... conv5_1 (mrf:
conv3_1 and conv4_1, as Li & Wand), and the
gradient with respect to the pixels (the optimiser's update, elementwise, is left out). Plain XLA
convolutions, real weights. The losses are timed in turns (gram, mean_std, ..., gram, ...) so
the machine's load falls on all of them alike; the table gives each loss's best time and the
ratios to gram's best (and of the medians), so a loaded machine's noise inflates neither, and the
ratio of the best CPU times (all threads of the process), which other jobs disturb less than wall
time: on a loaded machine a multi-threaded step (the convolutions) loses more wall time than a
single-threaded one (XLA:CPU's sort), so wall-time ratios measured under load understate the
quiet machine's.

    python scripts/bench_style_losses.py --sizes 128 256 --repeats 5
    python scripts/bench_style_losses.py --sizes 256 --losses gram sliced_wasserstein histogram
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from nstjax import losses, style_losses, style_mix, vgg
from nstjax.architecture import LAYER_INDEX
from nstjax.bench.report import machine_info

STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
CONTENT_LAYER = "conv4_2"
LAYERS_OF = {"mrf": ("conv3_1", "conv4_1")}
"""Losses timed at their paper's layers instead (Li & Wand's; MRF at conv1_1 matches every
output patch against every style patch of a full-resolution map: ~145 GFLOP at 128 px)."""


def make_step(name: str):
    """Jitted ``(params, [R, H, W, 3], ...) -> (loss [R], grad)`` with ``name`` as the style
    loss (the parameters an argument, not constants folded into the program)."""
    layers = tuple(sorted(STYLE_LAYERS + (CONTENT_LAYER,), key=LAYER_INDEX.get))
    style_layers = LAYERS_OF.get(name, STYLE_LAYERS)
    layer_weights = np.zeros(16, np.float32)
    layer_weights[[LAYER_INDEX[n] for n in style_layers]] = 1 / len(style_layers)

    program = style_mix.StyleProgram((name,), (style_layers,))

    def loss(params, pixels, content, targets, key):
        feats = vgg.features(params, pixels / 255.0, layers, "max")
        weights = style_mix.StyleWeights(1.0, layer_weights, key=jax.random.key_data(key))
        style = style_mix.style_loss(program, feats, {name: targets}, weights)
        return losses.content_loss(feats[CONTENT_LAYER], content) + 1e3 * style

    return jax.jit(jax.vmap(jax.value_and_grad(loss, argnums=1), in_axes=(None, 0, 0, 0, 0)))


def measure(
    params, size: int, runs: int, repeats: int, names: tuple[str, ...]
) -> dict[str, list[tuple[float, float]]]:
    """``(wall, CPU)`` seconds per step of each loss in ``names`` (the CPU time of all of this
    process's threads), ``repeats`` times, the losses in turns."""
    rng = np.random.default_rng(0)
    pixels = jnp.asarray(rng.uniform(0, 255, (runs, size, size, 3)), jnp.float32)
    style_image = jnp.asarray(rng.uniform(0, 1, (size, size, 3)), jnp.float32)
    feats = vgg.features(params, style_image, STYLE_LAYERS + (CONTENT_LAYER,), "max")
    content = jnp.broadcast_to(feats[CONTENT_LAYER], (runs, *feats[CONTENT_LAYER].shape))
    keys = jax.random.split(jax.random.key(0), runs)
    steps, args = {}, {}
    for name in names:
        program = style_mix.StyleProgram((name,), (LAYERS_OF.get(name, STYLE_LAYERS),))
        one = style_mix.targets_of(feats, program)[name]
        stacked = {layer: style_mix.stack([r] * runs) for layer, r in one.items()}
        args[name] = (params, pixels, content, stacked, keys)
        steps[name] = make_step(name)
        jax.block_until_ready(steps[name](*args[name]))  # compile
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(step(*args[name]))
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--runs", type=int, default=2, help="images per batch (vmapped)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--losses",
        nargs="+",
        choices=list(style_losses.STYLE_LOSSES),
        default=list(style_losses.STYLE_LOSSES),
        help="losses to time (gram is always timed: the ratios are to it)",
    )
    args = p.parse_args(argv)
    names = ("gram",) + tuple(n for n in args.losses if n != "gram")
    params = vgg.load_params()
    results = {}
    for size in args.sizes:  # printed as they come: 256 px takes minutes per loss on a CPU
        results[size] = measure(params, size, args.runs, args.repeats, names)
        print(size, json.dumps(results[size]), flush=True)
    print(json.dumps(machine_info()))
    header = " | ".join(
        f"{s} px: best ms | x gram (best) | x gram (median) | x gram (CPU time)" for s in args.sizes
    )
    print(f"| loss | {header} |")
    print("|---|" + "---|---|---|---|" * len(args.sizes))
    for name in names:
        cells = []
        for s in args.sizes:
            wall = {n: [w for w, _ in t] for n, t in results[s].items()}
            best = {n: min(t) for n, t in wall.items()}
            median = {n: float(np.median(t)) for n, t in wall.items()}
            cpu = {n: min(c for _, c in t) for n, t in results[s].items()}
            cells.append(
                f"{best[name] * 1e3:.0f} | {best[name] / best['gram']:.2f} | "
                f"{median[name] / median['gram']:.2f} | {cpu[name] / cpu['gram']:.2f}"
            )
        print(f"| {name} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    from nstjax.errors import run_script

    sys.exit(run_script(main))
