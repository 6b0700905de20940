"""The markdown tables of ``scripts/compile_for_accelerators.py``'s records: the compiled memory
per case (``--report``) and the roofline of the step on the datasheet devices (``--roofline``)."""

import json
from pathlib import Path

DEVICES = {  # dense datasheet peaks (TFLOP/s) and memory bandwidth (TB/s); see docs/benchmarks.md
    "H100 SXM": {"bf16": 989.4, "tf32": 494.7, "bandwidth": 3.35},
    "H200": {"bf16": 989.4, "tf32": 494.7, "bandwidth": 4.8},
    "TPU v5e": {"bf16": 197.0, "tf32": None, "bandwidth": 0.819},
}
LAUNCH_S = 5e-6
"""Assumed cost of one kernel launch on a GPU, launch latency plus XLA's per-thunk dispatch."""


def roofline(folder: Path, sizes=(512, 1024, 2048)) -> str:
    """Markdown roofline: per size and number format, compute- and memory-bound img-it/s per
    device, and the batch at which a step's compute equals its launch overhead.

    FLOPs: XLA's cost analysis of the unoptimised step (fp32 Adam, batch 1; the count does not
    depend on the dtype). Bytes: XLA:CPU's cost analysis after fusion of the fp32 step at the
    smallest size compiled on CPU, scaled by the pixel count to the other sizes (activations are
    nearly all of it), and halved for bf16 (XLA:CPU converts bf16 to fp32 around its
    convolutions, so its own bf16 count is no guide to a GPU's, which keeps bf16 activations).
    """
    h100 = json.loads((folder / "h100.json").read_text())
    cpu = json.loads((folder / "cpu.json").read_text())
    launches = [  # of the programs without remat, which the roofline is about
        r["kernel_launches"] for r in h100["records"] if r.get("kernel_launches") and not r["remat"]
    ]
    n_kernels = max(launches) if launches else None
    costs = h100["hlo_cost_per_image_batch1"]
    fused = {  # (size, dtype) -> bytes accessed per image after fusion (batch 1, Adam, no remat)
        (r["size"], r["dtype"]): r["cost"]["bytes_accessed"]
        for r in cpu["records"]
        if (r.get("cost") or {}).get("bytes_accessed") and r["batch"] == 1 and not r["remat"]
    }
    lines = [
        f"kernels launched per step (optimised H100 program without remat, entry computation): "
        f"{n_kernels}; "
        f"launch cost assumed {LAUNCH_S * 1e6:.0f} us each",
        "",
        "| px | format | GFLOP/img-it | GB/img-it (fused) | FLOP/byte | device | compute-bound "
        "img-it/s | memory-bound img-it/s | batch where compute = launches |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size in sizes:
        flops = costs.get(f"{size}px b1 adam float32 no-remat", {}).get("flops")
        for dtype, fmt in (("bfloat16", "bf16"), ("float32", "tf32")):
            known = sorted(s for s, d in fused if d == "float32")
            if not flops or not known:
                continue
            nbytes = fused[(known[0], "float32")] * (size / known[0]) ** 2
            nbytes /= 2 if dtype == "bfloat16" else 1
            for device, spec in DEVICES.items():
                if spec[fmt] is None:
                    continue
                compute = spec[fmt] * 1e12 / flops
                memory = spec["bandwidth"] * 1e12 / nbytes
                per_image_s = 1 / min(compute, memory)
                batch = n_kernels * LAUNCH_S / per_image_s if n_kernels else None
                lines.append(
                    f"| {size} | {fmt} | {flops / 1e9:.0f} | {nbytes / 1e9:.2f} "
                    f"| {flops / nbytes:.0f} | {device} | {compute:,.0f} | {memory:,.0f} "
                    f"| {'n/a' if batch is None else f'{batch:.2f}'} |"
                )
    return "\n".join(lines) + "\n"


def gb(value) -> str:
    return "n/a" if value is None else f"{value / 1e9:.2f}"


def markdown(folder: Path) -> str:
    """Markdown tables of every ``<target>.json`` in ``folder``."""
    lines = []
    for path in sorted(folder.glob("*.json")):
        result = json.loads(path.read_text())
        errors = [r for r in result["records"] if "error" in r or "skipped" in r]
        lines += [f"#### `{result['target']}` ({path.name})", ""]
        kinds = sorted({r["device_kind"] for r in result["records"] if "device_kind" in r})
        compile_s = sum(r.get("compile_s", 0) for r in result["records"])
        lines.append(
            f"device: {', '.join(kinds) or 'none'}; compile time, all cases: {compile_s:.0f} s"
        )
        lines.append("")
        for r in errors:
            lines.append(f"- {r['size']} px: {r.get('error') or r.get('skipped')}")
        if errors:
            lines.append("")
        lines += [
            "| px | optimiser | dtype | remat | GB at batch 1 | fixed GB | per-run GB "
            "| planner GB | planner ÷ compiler | proposed ÷ compiler | batch in 80 GB "
            "| batch in 16 GB |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for f in result["fits"]:
            if "per_run_bytes" not in f:  # one batch size only: no fit
                cells = [f["size"], f["optimizer"], f["dtype"], "on" if f["remat"] else "off"]
                cells.append(gb(f["total_bytes_by_batch"].get("1")))
                lines.append("| " + " | ".join(map(str, cells)) + " |" + " n/a |" * 7)
                continue
            lines.append(
                f"| {f['size']} | {f['optimizer']} | {f['dtype']} | {'on' if f['remat'] else 'off'} "
                f"| {gb(f['total_bytes_by_batch'].get('1'))} | {gb(f['fixed_bytes'])} "
                f"| {gb(f['per_run_bytes'])} | {gb(f['planner_bytes'])} "
                f"| {f['planner_over_compiler']:.2f} | {f['proposed_over_compiler']:.2f} "
                f"| {f['largest_batch']['80GB']} "
                f"| {f['largest_batch']['16GB']} |"
            )
        lines.append("")
    return "\n".join(lines)
