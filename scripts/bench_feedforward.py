"""Feed-forward training and apply throughput on this machine, against optimisation-based
stylisation of the same size in the same run (the machine is shared: compare the ratios).

    NSTJAX_WEIGHTS=/work/shared/weights/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 \\
        python scripts/bench_feedforward.py --sizes 256 512 --train-steps 2 --stylize-steps 3

For each size: the compiled training step's FLOPs (XLA's cost analysis) and warm images/s
(batch ``--batch-size``, the default network), warm apply images/s (batch 1), and the time per
step of ``nstjax.api.stylize`` at the same size, scaled to ``--reference-steps`` steps.
Compilation is timed separately and excluded from the rates.
"""

import argparse
import json
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from nstjax import api, vgg
from nstjax.feedforward import advance, training
from nstjax.feedforward import config as config_lib
from nstjax.run import Options


def _timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - started)
    return times


def bench_size(params, size: int, args) -> dict:
    rng = np.random.default_rng(0)
    # one network in one program, so XLA's cost analysis counts the whole step
    config = config_lib.TrainConfig(
        styles=("style",), content_dir="-", size=size, network_axis="unroll"
    )
    objective = training.objective_of(config)
    style = rng.random((size, size, 3), np.float32)
    grams = training.style_targets(params, objective, [style])
    hyper = training.hyper_of(config, objective)
    key = jax.random.key(0, impl="rbg")
    state = training._init_state(objective, key, jnp.full((1,), 1e-3))
    images = jnp.asarray(rng.random((args.batch_size, size, size, 3), np.float32))
    started = time.perf_counter()
    inputs = (state, params, objective, images, grams, hyper, jnp.int32(0))
    compiled = advance._train_step.lower(*inputs).compile()
    train_compile = time.perf_counter() - started
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost.get("flops", float("nan")))
    box = [state]

    def one_step():
        box[0], metrics, _ = compiled(box[0], params, images, grams, hyper, jnp.int32(0))
        return metrics

    train_times = _timed(one_step, args.train_steps)
    variables = training.inference_variables(box[0])
    content = jnp.asarray(rng.random((1, size, size, 3), np.float32))
    started = time.perf_counter()
    jax.block_until_ready(training._stylise_all(variables, objective.net, content))
    apply_compile = time.perf_counter() - started
    apply_times = _timed(lambda: training._stylise_all(variables, objective.net, content), 3)
    content_np, style_np = np.asarray(content[0]), style
    api.stylize(content_np, style_np, params=params, steps=1, chunk=1)  # compile
    started = time.perf_counter()
    api.stylize(content_np, style_np, params=params, steps=args.stylize_steps, chunk=1)
    per_step = (time.perf_counter() - started) / args.stylize_steps
    apply_s = statistics.median(apply_times)
    return {
        "size": size,
        "train_batch": args.batch_size,
        "train_step_gflop": flops / 1e9,
        "train_compile_s": train_compile,
        "train_images_per_s": args.batch_size / statistics.median(train_times),
        "apply_compile_s": apply_compile,
        "apply_s_per_image": apply_s,
        "apply_images_per_s": 1 / apply_s,
        "stylize_s_per_step": per_step,
        "stylize_s_total": per_step * args.reference_steps,
        "speedup_vs_stylize": per_step * args.reference_steps / apply_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--train-steps", type=int, default=2, help="timed training steps")
    parser.add_argument("--stylize-steps", type=int, default=3, help="timed stylize steps")
    parser.add_argument("--reference-steps", type=int, default=api_steps())
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    params = vgg.load_params()
    rows = [bench_size(params, size, args) for size in args.sizes]
    print(
        f"machine: {platform.processor() or platform.machine()}, {jax.devices()[0]}, "
        f"jax {jax.__version__}"
    )
    print(
        "| size | train GFLOP/step | train img/s | apply s/img | apply img/s | stylize s/step "
        f"| stylize {args.reference_steps} steps s | apply speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['train_step_gflop']:.0f} | {r['train_images_per_s']:.3f} | "
            f"{r['apply_s_per_image']:.3f} | {r['apply_images_per_s']:.2f} | "
            f"{r['stylize_s_per_step']:.2f} | {r['stylize_s_total']:.0f} | "
            f"{r['speedup_vs_stylize']:.0f}x |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


def api_steps() -> int:
    """The step count ``nstjax stylize`` runs by default."""
    return Options().steps


if __name__ == "__main__":
    from nstjax.errors import run_script

    sys.exit(run_script(main))
