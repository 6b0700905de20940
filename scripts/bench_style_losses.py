"""Cost of one loss-and-gradient evaluation with each style loss, relative to the Gram loss.

What is timed is the compiled heart of an optimisation step: VGG-19 features of ``--runs``
images (vmapped), the content loss at conv4_2 plus one style loss at conv1_1 ... conv5_1 (mrf:
conv3_1 and conv4_1, as Li & Wand), and the
gradient with respect to the pixels (the optimiser's update, elementwise, is left out). Plain XLA
convolutions, real weights. The losses are timed in turns (gram, mean_std, ..., gram, ...) so
the machine's load falls on all of them alike; the table gives medians and ratios to gram.

    python scripts/bench_style_losses.py --sizes 128 256 --repeats 5
"""

from __future__ import annotations

import argparse
import json
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


def measure(params, size: int, runs: int, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    pixels = jnp.asarray(rng.uniform(0, 255, (runs, size, size, 3)), jnp.float32)
    style_image = jnp.asarray(rng.uniform(0, 1, (size, size, 3)), jnp.float32)
    feats = vgg.features(params, style_image, STYLE_LAYERS + (CONTENT_LAYER,), "max")
    content = jnp.broadcast_to(feats[CONTENT_LAYER], (runs, *feats[CONTENT_LAYER].shape))
    keys = jax.random.split(jax.random.key(0), runs)
    steps, args = {}, {}
    for name in style_losses.STYLE_LOSSES:
        program = style_mix.StyleProgram((name,), (LAYERS_OF.get(name, STYLE_LAYERS),))
        one = style_mix.targets_of(feats, program)[name]
        stacked = {layer: style_mix.stack([r] * runs) for layer, r in one.items()}
        args[name] = (params, pixels, content, stacked, keys)
        steps[name] = make_step(name)
        jax.block_until_ready(steps[name](*args[name]))  # compile
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            jax.block_until_ready(step(*args[name]))
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--runs", type=int, default=2, help="images per batch (vmapped)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    params = vgg.load_params()
    results = {}
    for size in args.sizes:  # printed as they come: 256 px takes minutes per loss on a CPU
        results[size] = measure(params, size, args.runs, args.repeats)
        print(size, json.dumps(results[size]), flush=True)
    print(json.dumps(machine_info()))
    header = " | ".join(f"{s} px: ms | x gram" for s in args.sizes)
    print(f"| loss | {header} |")
    print("|---|" + "---|---|" * len(args.sizes))
    for name in style_losses.STYLE_LOSSES:
        cells = " | ".join(
            f"{results[s][name] * 1e3:.0f} | {results[s][name] / results[s]['gram']:.2f}"
            for s in args.sizes
        )
        print(f"| {name} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
