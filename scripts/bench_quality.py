"""The cost of the quality measures against the optimisation they judge.

    NSTJAX_WEIGHTS=/path/to/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 \\
        python scripts/bench_quality.py --sizes 64 128 256 --out docs/benchmarks/quality_cpu.json

For each size: the warm time of ``nstjax.quality.measure`` on one output (its content and its
style at the same size, every measure, the default protocol; compilation timed separately) and
the warm time per step of a one-run Adam optimisation at that size (the steps between the
observer's per-step callbacks, after the first), scaled to ``--reference-steps`` steps. The ratio
is the measures' share of such a run; the goal is under 5% at 256 px.
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import jax
import numpy as np

from nstjax import api, quality, vgg
from nstjax.execute import Observer
from nstjax.image import load_image
from nstjax.run import Options, Run


class _StepClock(Observer):
    def __init__(self):
        self.times = []

    def chunk_done(self, batch, steps, metrics, images):
        self.times.append(time.perf_counter())


def _step_seconds(params, content, style, steps: int) -> float:
    clock = _StepClock()
    options = Options(steps=steps, optimizer="adam", chunk=1, loop="python")
    api.stylize_batch(params, [content], [style], [Run()], options, observer=clock)
    return statistics.median(np.diff(clock.times[1:]))


def _measure_seconds(params, content, style, repeats: int) -> tuple[float, float]:
    output = np.clip(content + 0.1 * np.sin(np.arange(content.size)).reshape(content.shape), 0, 1)
    run = lambda: quality.measure(params, output[None], content[None], [style])
    started = time.perf_counter()
    run()
    first = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    warm = statistics.median(times)
    return warm, first - warm


def bench_size(params, size: int, args) -> dict:
    from nstjax import examples

    content = load_image(examples.CONTENT, size)
    style = load_image(examples.STYLE, size)
    warm, compile_s = _measure_seconds(params, content, style, args.repeats)
    per_step = _step_seconds(params, content, style, args.steps + 1)
    run_s = per_step * args.reference_steps
    return {
        "size": size,
        "output_shape": list(content.shape[:2]),
        "style_shape": list(style.shape[:2]),
        "measure_s": warm,
        "measure_compile_s": compile_s,
        "adam_s_per_step": per_step,
        "adam_run_s": run_s,
        "measure_share_of_run": warm / run_s,
    }


def _cpu_model() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    for line in text.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--steps", type=int, default=4, help="timed Adam steps per size")
    parser.add_argument("--repeats", type=int, default=2, help="timed warm measure calls")
    parser.add_argument("--reference-steps", type=int, default=300)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    params = vgg.load_params()
    machine = {"cpu": _cpu_model(), "device": str(jax.devices()[0])}
    print(f"machine: {machine['cpu']}, {machine['device']}")
    print(
        f"| size | measures s | compile s | Adam s/step | {args.reference_steps} steps s | share |"
    )
    print("|---|---|---|---|---|---|")
    rows = []
    for size in args.sizes:
        r = bench_size(params, size, args)
        rows.append(r)
        print(
            f"| {size} | {r['measure_s']:.2f} | {r['measure_compile_s']:.1f} | "
            f"{r['adam_s_per_step']:.3f} | {r['adam_run_s']:.0f} | "
            f"{100 * r['measure_share_of_run']:.1f}% |",
            flush=True,
        )
    if args.out:
        from nstjax.atomic import write_text

        write_text(
            args.out, json.dumps({"machine": machine, "args": vars(args), "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    from nstjax.errors import run_script

    sys.exit(run_script(main))
