"""Compile the real VGG-19 step for an H100 and a TPU v5e without either, and record the compiler's numbers.

    python -m venv /tmp/accvenv && echo "$(python -c 'import site;print(site.getsitepackages()[0])')" \
        > /tmp/accvenv/lib/python3.11/site-packages/base.pth    # reuse nstjax's own environment
    /tmp/accvenv/bin/pip install --no-deps libtpu==0.0.42.1 jax-cuda12-plugin==0.10.2 jax-cuda12-pjrt==0.10.2
    /tmp/accvenv/bin/python scripts/compile_for_accelerators.py --output docs/benchmarks/compiled
    python scripts/compile_for_accelerators.py --report docs/benchmarks/compiled   # markdown tables

(libtpu is the version ``jax[tpu]==0.10.2`` pins, 684 MB installed; the CUDA plugin without its
``with-cuda`` extra is 480 MB; neither needs an accelerator, a driver or the CUDA libraries to
compile.) Kept out of nstjax's own environment on purpose: a registered CUDA or TPU plugin changes
how every other JAX process there starts.

Each target (``h100``, ``v5e``, ``cpu``) and size runs in its own child process, so a plugin that
fails or hangs costs only its own entries, and every compile is written as one JSON line the moment
it finishes. For each (size, optimizer, dtype, remat) the step is compiled at ``--batches`` (two
sizes separate the fixed bytes from the per-run bytes, :func:`_compile_only.fit_batches`).
A size whose first compile takes longer than ``--case-timeout`` is skipped after it (recorded).
Then ``<target>.json`` holds the records, the fits, the sweep planner's estimate for each case and
the largest batch that fits 80 GB and 16 GB.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import _compiled_report

ROOT = Path(__file__).resolve().parents[1]

CAPACITIES_GB = (80, 16)
SUBPROCESS_SLACK_S = 120


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--targets", nargs="+", default=["h100", "v5e", "cpu"])
    p.add_argument("--sizes", nargs="+", type=int, default=[512, 1024, 2048])
    p.add_argument("--batches", nargs="+", type=int, default=[1, 2])
    p.add_argument("--optimizers", nargs="+", default=["adam", "lbfgs"])
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--remat", nargs="+", choices=("off", "on"), default=["off", "on"])
    p.add_argument(
        "--cases",
        nargs="+",
        default=None,
        help="OPTIMIZER:DTYPE:REMAT triples (e.g. adam:bfloat16:on) instead of the full product",
    )
    p.add_argument("--case-timeout", type=float, default=180.0, help="seconds per compile")
    p.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks" / "compiled")
    p.add_argument("--report", type=Path, default=None, help="print markdown from a folder")
    p.add_argument("--roofline", type=Path, default=None, help="print the roofline from a folder")
    p.add_argument(
        "--collect",
        action="store_true",
        help="write <target>.json from every <target>.jsonl line so far (several runs, or a killed one)",
    )
    p.add_argument("--worker", nargs=2, metavar=("TARGET", "SIZE"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def cases_of(args, size: int):
    from _compile_only import Case

    if args.cases:
        triples = [tuple(c.split(":")) for c in args.cases]
    else:
        triples = [(o, d, r) for o in args.optimizers for d in args.dtypes for r in args.remat]
    return [
        Case(size, optimizer, dtype, remat == "on", batch)
        for optimizer, dtype, remat in triples
        for batch in sorted(args.batches)
    ]


def worker(args) -> int:
    """One target, one size: compile every case, one JSON line each, to stdout."""
    import _compile_only as compiled

    compiled.setup_environment()
    target, size = args.worker[0], int(args.worker[1])
    args.output.mkdir(parents=True, exist_ok=True)

    def emit(record):  # to the parent, and appended to <target>.jsonl: a kill loses nothing done
        print(json.dumps(record), flush=True)
        with open(args.output / f"{target}.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    try:
        device = compiled.compile_only_device(target)
    except Exception as e:
        emit({"target": target, "size": size, "error": f"{type(e).__name__}: {e}"[:2000]})
        return 0
    params = compiled.vgg19_params()
    for case in cases_of(args, size):
        record = {"target": target, "device_kind": device.device_kind, **vars(case)}
        try:
            exe, lowered, seconds = compiled.compile_step(params, case, device)
        except Exception as e:
            emit({**record, "error": f"{type(e).__name__}: {str(e)[:1500]}"})
            continue
        record.update(
            compile_s=seconds,
            memory=compiled.memory_record(exe),
            cost=compiled.cost_record(exe, lowered),
            kernel_launches=compiled.kernel_launches(exe),
        )
        emit(record)
        if seconds > args.case_timeout:
            emit({"target": target, "size": size, "skipped": f"compile took {seconds:.0f} s"})
            break
    return 0


def hlo_costs(args) -> dict:
    """XLA's cost analysis of the unoptimised step (platform-independent), per size and case at
    batch 1: FLOPs and bytes accessed per image-iteration (lowering only, no compile)."""
    import _compile_only as compiled
    import jax

    from nstjax import engine

    params = compiled.vgg19_params()
    sharding = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    costs = {}
    for size in args.sizes:
        for case in cases_of(args, size):
            if case.batch != 1:
                continue
            inputs = compiled.abstract_inputs(params, case.program(), 1, size, sharding)
            analysis = engine.train_step.lower(*inputs, program=case.program()).cost_analysis()
            costs[case.label()] = {
                "flops": float(analysis["flops"]),
                "bytes_accessed": float(analysis["bytes accessed"]),
            }
    return costs


def run_target(args, target: str) -> list[dict]:
    records = []
    for size in args.sizes:
        n_cases = len(cases_of(args, size))
        command = [sys.executable, __file__, "--worker", target, str(size)]
        for flag in ("batches", "optimizers", "dtypes", "remat", "cases"):
            if getattr(args, flag):
                command += [f"--{flag}", *map(str, getattr(args, flag))]
        command += ["--case-timeout", str(args.case_timeout), "--output", str(args.output)]
        env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
        env.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")
        limit = n_cases * args.case_timeout + SUBPROCESS_SLACK_S
        start = time.perf_counter()
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=limit, cwd=ROOT
            )
            out, note = done.stdout, None if done.returncode == 0 else f"exit {done.returncode}"
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            note = f"killed after {limit:.0f} s"
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        if note:
            lines.append({"target": target, "size": size, "error": note})
        for line in lines:
            print(f"{target} {size}: {summary_line(line)}", flush=True)
        print(f"{target} {size}: {time.perf_counter() - start:.0f} s", flush=True)
        records += lines
    return records


def collected(folder: Path, target: str) -> list[dict]:
    """Every record of ``<target>.jsonl``, the last one of each case kept."""
    path = folder / f"{target}.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    keep = {}
    for r in lines:
        key = tuple(r.get(k) for k in ("size", "optimizer", "dtype", "remat", "batch", "error"))
        keep[key] = r
    return list(keep.values())


def summary_line(record: dict) -> str:
    if "error" in record or "skipped" in record:
        return record.get("error") or record["skipped"]
    mem = record["memory"] or {}
    return (
        f"{record['optimizer']} {record['dtype']} remat={record['remat']} b{record['batch']}: "
        f"{mem.get('total_bytes', 0) / 1e9:.3f} GB, compile {record['compile_s']:.0f} s"
    )


def planner_bytes(case) -> int:
    from nstjax.batch.memory import run_bytes

    return run_bytes(
        (case["size"], case["size"]),
        "conv5_1",
        dtype=case["dtype"],
        optimizer=case["optimizer"],
        remat=case["remat"],
    )


ACTIVATION_BYTES_PER_ELEMENT = {"float32": 4.8, "bfloat16": 3.15}
"""Bytes per activation element one run keeps without remat (fitted to the H100 compiles: the
activation in its dtype plus what XLA keeps beside it, e.g. the fp32 copies the Grams read)."""
REMAT_BLOCK_FACTOR = {"float32": 2.3, "bfloat16": 2.8}
"""With remat: the largest block's activations live at once, times this, in its dtype."""


def proposed_run_bytes(case: dict) -> float:
    """The per-run estimate recommended for ``nstjax.batch.memory.run_bytes`` (same inputs): the
    planner's structure with factors fitted to the compiler's memory analysis."""
    from nstjax.architecture import CHANNELS, LAYER_INDEX, LAYER_NAMES, downsampling

    size, dtype = case["size"], case["dtype"]
    itemsize = 2 if dtype == "bfloat16" else 4
    blocks: dict[int, int] = {}
    for name in LAYER_NAMES[: LAYER_INDEX["conv5_1"] + 1]:
        f = downsampling(name)
        blocks[f] = blocks.get(f, 0) + (size // f) ** 2 * CHANNELS[name]
    if case["remat"]:
        inputs = size * size * 3 + sum(
            (size // f) ** 2 * CHANNELS[f"conv{f.bit_length() - 1}_1"] for f in blocks if f > 1
        )
        activations = (inputs + REMAT_BLOCK_FACTOR[dtype] * max(blocks.values())) * itemsize
    else:
        activations = ACTIVATION_BYTES_PER_ELEMENT[dtype] * sum(blocks.values())
    slots = 2 + (2 * 20 + 2 if case["optimizer"] == "lbfgs" else 2)
    return activations + slots * size * size * 3 * 4


def fits(records: list[dict]) -> list[dict]:
    """Per (size, optimizer, dtype, remat): fixed and per-run bytes, planner, largest batches."""
    from _compile_only import fit_batches, largest_batch

    groups: dict[tuple, dict[int, int]] = {}
    for r in records:
        if r.get("memory"):
            key = (r["size"], r["optimizer"], r["dtype"], r["remat"])
            groups.setdefault(key, {})[r["batch"]] = r["memory"]["total_bytes"]
    out = []
    for (size, optimizer, dtype, remat), totals in sorted(groups.items()):
        entry = {"size": size, "optimizer": optimizer, "dtype": dtype, "remat": remat}
        entry["total_bytes_by_batch"] = {str(b): m for b, m in sorted(totals.items())}
        if len(totals) >= 2:
            fixed, per_run = fit_batches(totals)
            planner = planner_bytes(entry)
            entry.update(
                fixed_bytes=fixed,
                per_run_bytes=per_run,
                planner_bytes=planner,
                planner_over_compiler=planner / per_run,
                proposed_bytes=proposed_run_bytes(entry),
                proposed_over_compiler=proposed_run_bytes(entry) / per_run,
                largest_batch={
                    f"{gb}GB": largest_batch(fixed, per_run, gb * 1e9) for gb in CAPACITIES_GB
                },
            )
        out.append(entry)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    if args.report:
        print(_compiled_report.markdown(args.report))
        return 0
    if args.roofline:
        print(_compiled_report.roofline(args.roofline))
        return 0
    args.output.mkdir(parents=True, exist_ok=True)
    import jax

    versions = {"jax": jax.__version__, "python": platform.python_version()}
    for dist in ("libtpu", "jax-cuda12-plugin", "jax-cuda12-pjrt"):
        try:
            from importlib.metadata import version

            versions[dist] = version(dist)
        except Exception:
            versions[dist] = None
    costs = {} if args.collect else hlo_costs(args)
    for target in args.targets:
        start = time.perf_counter()
        if not args.collect:
            run_target(args, target)  # its workers append to <target>.jsonl
        records = collected(args.output, target)
        previous = args.output / f"{target}.json"
        if previous.is_file():  # keep what earlier runs knew
            costs = {
                **json.loads(previous.read_text()).get("hlo_cost_per_image_batch1", {}),
                **costs,
            }
        result = {
            "target": target,
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": {"cpu_count": os.cpu_count(), "load_average": list(os.getloadavg())},
            "versions": versions,
            "wall_s": time.perf_counter() - start,
            "hlo_cost_per_image_batch1": costs,
            "records": records,
            "fits": fits(records),
        }
        path = args.output / f"{target}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    from nstjax.errors import run_script

    sys.exit(run_script(main))
