"""Cold compile time and step time of the K-network training step against K, for each
``--network-axis`` form (each point in a fresh process, the compilation cache off).

    NSTJAX_WEIGHTS=/work/shared/weights/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 \\
        python scripts/bench_network_axis.py --networks 1 2 4 8 --size 64 --json axis.json

Every point builds the step of ``nstjax train`` (the default network, the real VGG-19, or with
``--tiny`` a random 4..16-channel VGG and a width-4 network without residual blocks), times
tracing and compiling it, then the median of ``--steps`` warm steps. The points are run form by
form within each K, so a load change on a shared machine falls on neighbouring forms alike; the
ratios are against ``--reference`` at the same K in the same run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from nstjax.bench.report import cpu_model
from nstjax.feedforward.step import NETWORK_AXES


def measure(form: str, networks: int, size: int, batch_size: int, steps: int, tiny: bool):
    """One point, in this process: compile seconds and the warm step's median seconds."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_compilation_cache", False)
    from nstjax import vgg
    from nstjax.feedforward import NetworkConfig, TrainConfig, advance, training

    extra = {}
    if tiny:
        extra = dict(
            network=NetworkConfig(width=4, residual_blocks=0),
            content_layers=("conv2_1",),
            style_layers=("conv1_1", "conv2_1"),
        )
    config = TrainConfig(
        styles=("style",) * networks,
        content_dir="-",
        size=size,
        batch_size=batch_size,
        style_weight=tuple(float(10 + k) for k in range(networks)),
        network_axis=form,
        **extra,
    )
    params = vgg.init_params(jax.random.key(0)) if tiny else vgg.load_params()
    params = {k: v for k, v in params.items() if k != "prepared"}
    rng = np.random.default_rng(0)
    objective = training.objective_of(config)
    styles = [rng.random((size, size, 3), np.float32)] * networks
    targets = training.style_targets(params, objective, styles)
    hyper = training.hyper_of(config, objective)
    key = jax.random.key(0, impl="rbg")
    rate = jnp.full((networks,), 1e-3)
    state = training._init_state(objective, key, rate)
    images = jnp.asarray(rng.random((batch_size, size, size, 3), np.float32))
    times = []
    for s in range(steps + 1):  # the first call compiles
        begun = time.perf_counter()
        state, metrics, _ = advance.advance(
            state, params, objective, images, targets, hyper, jnp.int32(s)
        )
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - begun)
    step_s = statistics.median(times[1:])
    return {
        "form": form,
        "networks": networks,
        "size": size,
        "batch_size": batch_size,
        "tiny": tiny,
        "compile_s": times[0] - step_s,
        "step_s": step_s,
        "loss": np.asarray(metrics[:, 0]).tolist(),
    }


def _point(form: str, networks: int, args) -> dict:
    """One point in a fresh process (so nothing compiled before is reused)."""
    command = [sys.executable, __file__, "--point", form, str(networks), "--size", str(args.size)]
    command += ["--batch-size", str(args.batch_size), "--steps", str(args.steps)]
    command += ["--tiny"] if args.tiny else []
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[1])] + [os.environ.get("PYTHONPATH", "")]
        ),
    }
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return {"form": form, "networks": networks, "size": args.size, "timeout": args.timeout}
    if done.returncode:
        raise SystemExit(f"{form} K={networks} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(rows: list[dict], reference: str) -> str:
    by = {(r["form"], r["networks"]): r for r in rows}
    lines = [
        f"| form | K | compile s | step s | compile / {reference}'s | step / {reference}'s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "timeout" in r:
            lines.append(f"| {r['form']} | {r['networks']} | > {r['timeout']} | | | |")
            continue
        ref = by.get((reference, r["networks"]), {})
        ratio = {k: f"{r[k] / ref[k]:.2f}" if k in ref else "" for k in ("compile_s", "step_s")}
        lines.append(
            f"| {r['form']} | {r['networks']} | {r['compile_s']:.1f} | {r['step_s']:.3f} | "
            f"{ratio['compile_s']} | {ratio['step_s']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", nargs="+", choices=NETWORK_AXES, default=list(NETWORK_AXES))
    parser.add_argument("--networks", type=int, nargs="+", default=[1, 2, 4, 8], help="K")
    parser.add_argument("--size", type=int, default=64, help="training crop side, px")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3, help="timed warm steps per point")
    parser.add_argument("--tiny", action="store_true", help="random tiny VGG, width-4 network")
    parser.add_argument(
        "--reference",
        choices=NETWORK_AXES,
        default=None,
        help="the form the ratios are against (default: the first of --forms)",
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per point")
    parser.add_argument("--json", default=None, help="also write the figures here")
    parser.add_argument("--point", nargs=2, metavar=("FORM", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.point:
        form, networks = args.point[0], int(args.point[1])
        row = measure(form, networks, args.size, args.batch_size, args.steps, args.tiny)
        print(json.dumps(row))
        return
    load_before = os.getloadavg()
    rows = []
    for networks in args.networks:
        for form in args.forms:
            rows.append(_point(form, networks, args))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    import jax

    machine = {
        "cpu": cpu_model(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "jax": jax.__version__,
        "device": str(jax.devices()[0]),
        "command": " ".join(sys.argv),
    }
    print(
        f"machine: {machine['cpu']}, {machine['device']}, jax {machine['jax']}, "
        f"load average {machine['load_average_before'][0]:.1f} before, "
        f"{machine['load_average_after'][0]:.1f} after"
    )
    print(_table(rows, args.reference or args.forms[0]))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "points": rows}, indent=2))


if __name__ == "__main__":
    from nstjax.errors import run_script

    sys.exit(run_script(main))
