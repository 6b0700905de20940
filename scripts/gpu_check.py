"""The measurements of ``scripts/gpu_check.sh``: each step in its own process with its own timeout.

    python scripts/gpu_check.py --output docs/benchmarks/gpu             # on a machine with a GPU
    python scripts/gpu_check.py --dry-run --output /tmp/gpu_check        # CPU rehearsal, tiny sizes

Steps (:data:`STEPS`; a step that fails or times out is recorded and the others still run):

- ``bench_bf16``, ``bench_tf32``: img-it/s and MFU of the compiled step at 512 px, batch 1, 16 and
  64, bf16 activations and fp32 inputs at the backend's default precision (TF32 on NVIDIA), through
  :func:`nstjax.bench.suite.run_case` (what ``nstjax bench`` runs per case);
- ``torch``: the same-GPU PyTorch reference per image-iteration and the ratio, through
  :func:`nstjax.bench.compare.compare_case` (512 px, batch 1, Adam);
- ``remat_2048``: one 2048 px image, bf16, rematerialised, through ``run_case``;
- ``stylize``: cold and warm wall time of a 500-step 512 px ``nstjax stylize``
  (:func:`nstjax.bench.suite.time_to_result`);
- ``largest``: the largest size that runs a step at batch 1 (bf16, remat;
  :func:`nstjax.bench.suite.largest_size`; "n/a" on CPU);
- ``time_to_quality``: CF, GE and LP against wall time for nstjax's recipes and neural-style's in
  PyTorch on the same GPU, one pair at 512 px with a fifth of each recipe's iterations
  (:func:`nstjax.bench.time_to_quality.run_pair`; scripts/time_to_quality.py runs it in full).

Weights: ``--weights``, ``$NSTJAX_WEIGHTS`` or ``../shared/weights`` when present; otherwise random
VGG-19 weights at the real widths, written once as an ``.h5`` (the PyTorch side reads it) and an
``.npz`` (nstjax loads it): speed does not depend on the values, and both sides then optimise the
same network. ``--dry-run`` runs every step on the CPU at 32-64 px with a few iterations.
Writes ``gpu_check.json`` (every record) and ``gpu_check.md`` (tables) into ``--output``.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"

FULL = {
    "bench_size": 512,
    "bench_batches": (1, 16, 64),
    "iterations": 20,
    "chunk": 10,
    "torch_case": (512, 1),
    "torch_iterations": 5,
    "torch_rounds": 3,
    "remat_size": 2048,
    "stylize": (512, 500),
    "largest_sizes": (2048, 3072, 4096, 6144),
    "ttq": {"size": 512, "budget": 0.2, "checkpoints": 5, "min_scale": 128},
}
DRY = {
    "bench_size": 32,
    "bench_batches": (1, 2),
    "iterations": 2,
    "chunk": 2,
    "torch_case": (32, 1),
    "torch_iterations": 2,
    "torch_rounds": 3,
    "remat_size": 64,
    "stylize": (32, 5),
    "largest_sizes": (64, 128),
    "ttq": {"size": 40, "budget": 0.01, "checkpoints": 2, "min_scale": 24},
}
STEPS = {  # name -> timeout in seconds (the shell script's install and tests come before)
    "machine": 30,
    "bench_bf16": 60,
    "bench_tf32": 60,
    "torch": 50,
    "remat_2048": 40,
    "stylize": 80,
    "largest": 40,
    "time_to_quality": 300,
}


def step_machine(sizes, weights):
    import jax

    from nstjax.bench.report import machine_info

    return {**machine_info(), "devices": [str(d) for d in jax.devices()]}


def load_params(weights: dict):
    from nstjax import vgg

    return vgg.load_params(weights["npz"] or weights["h5"])


def bench(sizes: dict, weights: dict, precision: str) -> dict:
    from nstjax.bench import suite

    params = load_params(weights)
    records = []
    for batch in sizes["bench_batches"]:  # small to large: the memory high-water mark rises
        case = suite.Case(sizes["bench_size"], batch, precision, False, "adam")
        records.append(_run_case(suite, params, case, sizes))
    return {"results": records}


def _run_case(suite, params, case, sizes) -> dict:
    from nstjax import engine

    measurement = suite.Measurement(sizes["iterations"], 3, engine.default_loop(), sizes["chunk"])
    return suite.run_case(params, case, measurement, probes={}, flops_cache={})


def step_bench_bf16(sizes, weights):
    return bench(sizes, weights, "bf16")


def step_bench_tf32(sizes, weights):
    return bench(sizes, weights, "default")  # fp32 inputs, the backend's default: TF32 on NVIDIA


def step_remat_2048(sizes, weights):
    from nstjax.bench import suite

    case = suite.Case(sizes["remat_size"], 1, "bf16", True, "adam")
    return {"results": [_run_case(suite, load_params(weights), case, sizes)]}


def step_torch(sizes, weights):
    import jax

    from nstjax import kernels, vgg
    from nstjax.bench import compare
    from nstjax.optim import LBFGS_HISTORY

    size, batch = sizes["torch_case"]
    settings = compare.Settings(
        iterations=sizes["torch_iterations"],
        rounds=sizes["torch_rounds"],
        warmup=2,
        lr=4.0,
        lbfgs_history=LBFGS_HISTORY,
        threads=os.cpu_count(),
        loss_rtol=0.03,
        device="cpu" if jax.default_backend() == "cpu" else "cuda",
    )
    convolution = kernels.choose()
    params = vgg.prepare(load_params(weights), convolution)
    record = compare.compare_case(settings, params, convolution, weights["h5"], size, batch, "adam")
    return {"results": [record], "torch_device": settings.device}


def step_stylize(sizes, weights):
    from nstjax.bench import suite

    size, steps = sizes["stylize"]
    config = SimpleNamespace(time_to_result=SimpleNamespace(size=size, steps=steps))
    workdir = Path(os.environ["GPU_CHECK_WORKDIR"]) / "stylize"
    return suite.time_to_result(config, workdir, weights["npz"] or weights["h5"])


def step_largest(sizes, weights):
    from nstjax.bench import suite
    from nstjax.optim import LBFGS_HISTORY

    largest = SimpleNamespace(
        sizes=sizes["largest_sizes"], precision="bf16", remat=True, optimizer="adam"
    )
    config = SimpleNamespace(largest=largest, lbfgs_history=LBFGS_HISTORY)
    return suite.largest_size(load_params(weights), config)


GPU_TTQ_RECIPES = tuple(
    "nstjax nstjax-c2f nstjax-c2f-lbfgs-detail crowsonkb neural-style-torch".split()
)
"""The time-to-quality step's recipes: the default, its objective coarse to fine, neural-style's
objective with L-BFGS coarse to fine and the content's detail added at each upscale (the closest
to the reference on CPU: docs/benchmarks.md, Time to quality), crowsonkb's and the reference."""


def step_time_to_quality(sizes, weights):
    import jax

    from nstjax import examples
    from nstjax.bench import time_to_quality as ttq
    from nstjax.image import load_image

    case = sizes["ttq"]
    settings = ttq.Settings(
        size=case["size"],
        budget=case["budget"],
        checkpoints=case["checkpoints"],
        recipes=GPU_TTQ_RECIPES,
        min_scale=case["min_scale"],
        threads=os.cpu_count() or 1,
        device="cuda" if jax.default_backend() == "gpu" else "cpu",
    )
    content = load_image(examples.CONTENT, settings.size, "content image")
    style = load_image(examples.STYLE, settings.size, "style image")
    pair = ttq.run_pair(
        load_params(weights), weights["h5"], content, style, "chelsea+starry_night", settings
    )
    rows = ttq.summary_rows([pair])
    return {
        "settings": str(settings),
        "pairs": [pair],
        "summary": rows,
        "table": ttq.markdown_table(rows),
    }


# ----------------------------------------------------------------------------- weights


def random_weights(folder: Path) -> dict:
    """Random VGG-19 weights (real widths), as a Keras-layout ``.h5`` and a converted ``.npz``."""
    import h5py
    import numpy as np

    from nstjax import weights
    from nstjax.architecture import LAYERS

    folder.mkdir(parents=True, exist_ok=True)
    h5 = folder / "random_vgg19.h5"
    rng = np.random.default_rng(0)
    with h5py.File(h5, "w") as f:
        for name, cin, cout in LAYERS:
            block, conv = name[len("conv") :].split("_")
            group = f.create_group(f"block{block}_conv{conv}")
            kernel = rng.standard_normal((3, 3, cin, cout), np.float32) * np.sqrt(2 / (9 * cin))
            group.create_dataset(f"{group.name[1:]}_W_1:0", data=kernel)
            group.create_dataset(f"{group.name[1:]}_b_1:0", data=np.zeros(cout, np.float32))
    npz = weights.convert(h5, folder / "random_vgg19.npz", verify_md5=False)
    return {"h5": str(h5), "npz": str(npz), "source": "random (no VGG-19 weights here)"}


def find_weights(given: str | None, folder: Path) -> dict:
    """The real weights if they are anywhere known, else :func:`random_weights`."""
    candidates = [given, os.environ.get("NSTJAX_WEIGHTS")]
    candidates += [
        str(p / "weights" / WEIGHTS_NAME) for p in (ROOT / "shared", ROOT.parent / "shared")
    ]
    for path in candidates:
        if path and Path(path).is_file() and str(path).endswith(".h5"):
            return {"h5": path, "npz": None, "source": path}
    return random_weights(folder)


# ----------------------------------------------------------------------------- report


def _result(report: dict, name: str):
    return next((s.get("result") for s in report["steps"] if s["step"] == name), None)


def targets_met(report: dict) -> list[str]:
    """The issue's GPU targets against what was measured (``n/a`` where a step failed)."""
    bf16 = (_result(report, "bench_bf16") or {}).get("results", [])
    large = [r for r in bf16 if r.get("status") == "ok" and r["batch"] >= 16]
    mfus = [
        r["mfu_nominal"] for r in large if r.get("mfu_nominal")
    ]  # the target is the datasheet's
    torch = (_result(report, "torch") or {}).get("results", [])
    ratio = torch[0]["ratio_median_of_rounds"] if torch else None
    remat = (_result(report, "remat_2048") or {}).get("results", [])
    remat_ok = remat[0].get("status") == "ok" if remat else None
    fmt = lambda ok: "n/a" if ok is None else ("met" if ok else "NOT met")
    return [
        f"- >= 40% MFU (datasheet peak) in bf16 at batch >= 16: best {max(mfus):.1%}, "
        f"{fmt(max(mfus) >= 0.4)}"
        if mfus
        else "- >= 40% MFU in bf16 at batch >= 16: n/a",
        f"- >= 3x the PyTorch reference per image-iteration: {ratio:.2f}x, {fmt(ratio >= 3)}"
        if ratio
        else "- >= 3x the PyTorch reference: n/a",
        f"- a {report['sizes']['remat_size']} px image at batch 1 with remat: {fmt(remat_ok)}",
    ]


def markdown(report: dict) -> str:
    """``gpu_check.md``: the steps, the throughput table, PyTorch, time to result, targets."""
    from nstjax.bench.report import markdown_table

    machine = _result(report, "machine") or {}
    lines = [
        "# GPU check"
        + (" (dry run on CPU: tiny sizes, not a measurement)" if report["dry_run"] else ""),
        "",
        f"- device: {machine.get('device_kind', 'n/a')} ({machine.get('backend', 'n/a')}), "
        f"jax {machine.get('jax', 'n/a')}; weights: {report['weights']}",
        "",
        "| step | status | wall s | error |",
        "|---|---|---|---|",
    ]
    for step in report["shell_steps"] + report["steps"]:
        error = str(step.get("error", "")).replace("|", "/")[:200]
        lines.append(f"| {step['step']} | {step['status']} | {step['wall_s']:.0f} | {error} |")
    records = [
        r
        for name in ("bench_bf16", "bench_tf32", "remat_2048")
        for r in (_result(report, name) or {}).get("results", [])
    ]
    lines += ["", markdown_table(records)] if records else []
    for r in (_result(report, "torch") or {}).get("results", []):
        lines.append(
            f"- PyTorch ({_result(report, 'torch')['torch_device']}) {r['size']} px batch "
            f"{r['batch']} {r['optimizer']}: {r['torch_s_per_image_iteration'] * 1e3:.2f} ms/img-it, "
            f"nstjax {r['nstjax_s_per_image_iteration'] * 1e3:.2f} ms/img-it, ratio "
            f"{r['ratio_median_of_rounds']:.2f}x; losses agree: {r['losses_agree']}"
        )
    ttr = _result(report, "stylize")
    if ttr and "cold_s" in ttr:
        lines.append(
            f"- `nstjax stylize` {ttr['steps']} steps at {ttr['size']} px: cold {ttr['cold_s']:.1f} s, "
            f"warm {ttr['warm_s']:.1f} s"
        )
    elif ttr:
        lines.append(f"- `nstjax stylize`: failed ({ttr.get('error')})")
    largest = _result(report, "largest")
    if largest:
        lines.append(
            f"- largest size at batch 1 (bf16, remat): {largest['largest_size'] or 'n/a'} "
            f"{largest.get('note', '')} tried {largest.get('tried')}".rstrip()
        )
    ttq = _result(report, "time_to_quality")
    if ttq:
        lines += ["", f"Time to quality ({ttq['settings']}):", "", ttq["table"]]
    return "\n".join(lines + ["", "Targets (issue 14):", *targets_met(report)]) + "\n"


# ----------------------------------------------------------------------------- driver


def run_step(name: str, args, weights: dict, workdir: Path) -> dict:
    """Runs one step in a child process under its timeout; returns its record."""
    out = workdir / f"{name}.json"
    command = [sys.executable, __file__, "--step", name, "--weights-json", json.dumps(weights)]
    command += ["--step-output", str(out)] + (["--dry-run"] if args.dry_run else [])
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    env["GPU_CHECK_WORKDIR"] = str(workdir)
    if name in ("torch", "time_to_quality"):  # PyTorch shares the GPU: no JAX preallocation
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    timeout = STEPS[name] * float(os.environ.get("GPU_CHECK_TIME_SCALE", 3 if args.dry_run else 1))
    start = time.perf_counter()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        status = "ok" if done.returncode == 0 and out.is_file() else "failed"
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    except subprocess.TimeoutExpired:
        status, tail = "timeout", [f"killed after {timeout} s"]
    record = {"step": name, "status": status, "wall_s": time.perf_counter() - start}
    if status == "ok":
        record["result"] = json.loads(out.read_text())
    else:
        record["error"] = " | ".join(tail)[-1500:]
    print(f"[{name}] {status} in {record['wall_s']:.0f} s", flush=True)
    return record


def child(args) -> int:
    sizes = DRY if args.dry_run else FULL
    weights = json.loads(args.weights_json)
    result = globals()[f"step_{args.step}"](sizes, weights)
    Path(args.step_output).write_text(json.dumps(result, indent=1, default=str))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks" / "gpu")
    p.add_argument("--dry-run", action="store_true", help="CPU rehearsal at tiny sizes")
    p.add_argument("--weights", default=None, help="VGG-19 .h5 (default: found, else random)")
    p.add_argument("--steps", nargs="+", default=list(STEPS), choices=list(STEPS))
    p.add_argument("--shell-json", type=Path, default=None, help="the shell steps' records")
    p.add_argument("--step", default=None, help=argparse.SUPPRESS)
    p.add_argument("--weights-json", default=None, help=argparse.SUPPRESS)
    p.add_argument("--step-output", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.step:
        return child(args)
    args.output.mkdir(parents=True, exist_ok=True)
    workdir = args.output / "work"
    workdir.mkdir(parents=True, exist_ok=True)
    weights = find_weights(args.weights, workdir / "weights")
    print(f"weights: {weights['source']}", flush=True)
    report = {  # no JAX in this process: it would hold the GPU the steps need
        "dry_run": args.dry_run,
        "weights": weights["source"],
        "sizes": DRY if args.dry_run else FULL,
        "shell_steps": json.loads(args.shell_json.read_text()) if args.shell_json else [],
        "steps": [run_step(name, args, weights, workdir) for name in args.steps],
    }
    (args.output / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (args.output / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
