"""Writing a benchmark report: JSON (everything), a markdown table, a PNG of throughput vs batch."""

import json
import os
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jax

from nstjax import atomic

COLUMNS = (
    ("size", "px", "{}"),
    ("batch", "batch", "{}"),
    ("precision", "precision", "{}"),
    ("remat", "remat", "{}"),
    ("optimizer", "optimizer", "{}"),
    ("img_it_per_s", "img-it/s", "{:.3g}"),
    ("s_per_image_iteration", "ms/img-it", "ms"),
    ("mfu", "MFU (measured peak)", "pct"),
    ("model_flops_per_image", "GFLOP/img-it", "giga"),
    ("achieved_flops_per_s", "GFLOP/s", "giga"),
    ("peak_flops_per_s", "measured peak GFLOP/s", "giga"),
    ("mfu_nominal", "MFU (nominal peak)", "pct"),
    ("xla_over_hand", "XLA/hand", "{:.3f}"),
    ("compile_s", "compile s", "{:.1f}"),
    ("spread", "spread", "pct"),
    ("peak_bytes_per_image", "peak MB/img", "mega"),
    ("compiled_bytes_per_image", "XLA MB/img", "mega"),
)
"""(record field, column title, format) of the markdown table."""

STEP_PEAK_NOTE = (
    "(step): the step ran faster than the matmul probe in the same precision, so the measured "
    "peak is the step's own rate (MFU 100%): the probe is not this machine's peak."
)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_info() -> dict[str, Any]:
    """The machine and software a report was measured with."""
    device = jax.devices()[0]
    cpu = cpu_model()
    return {
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "n/a"
    if fmt == "ms":
        return f"{value * 1e3:.1f}"
    if fmt == "pct":
        return f"{value:.1%}"
    if fmt == "giga":
        return f"{value / 1e9:.1f}"
    if fmt == "mega":
        return f"{value / 1e6:.0f}"
    if isinstance(value, bool):
        return "on" if value else "off"
    return fmt.format(value)


def _cells(record: Mapping[str, Any]) -> list[str]:
    if record.get("status", "ok") != "ok":
        cells = [_cell(record.get(k), f) for k, _, f in COLUMNS[:5]]
        return cells + [record["status"]] + [""] * (len(COLUMNS) - 6)
    cells = [_cell(record.get(key), fmt) for key, _, fmt in COLUMNS]
    if record.get("peak_source") == "step":
        column = [key for key, _, _ in COLUMNS].index("peak_flops_per_s")
        cells[column] += " (step)"
    return cells


def markdown_table(results: Iterable[Mapping[str, Any]]) -> str:
    """A markdown table of benchmark records (``n/a`` where a figure does not exist), with a
    note under it when a step beat the matmul probe (:mod:`nstjax.bench.mfu`)."""
    results = list(results)
    lines = [
        "| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_cells(record)) + " |" for record in results]
    if any(r.get("peak_source") == "step" for r in results):
        lines += ["", STEP_PEAK_NOTE]
    return "\n".join(lines) + "\n"


def _mfu_summary(record: Mapping[str, Any]) -> str:
    """``MFU 45.0% of the measured peak (275 GFLOP/s), 12.0% of the nominal (n/a)``."""
    pct = lambda v: "n/a" if v is None else f"{v:.1%}"
    giga = lambda v: "n/a" if v is None else f"{v / 1e9:.1f} GFLOP/s"
    measured = (
        f"MFU {pct(record.get('mfu'))} of the measured peak ({giga(record.get('peak_flops_per_s'))}"
    )
    if record.get("peak_source") == "step":
        measured += (
            f": the step's own rate, faster than the matmul probe's "
            f"{giga(record.get('probe_flops_per_s'))}"
        )
    nominal = record.get("nominal_peak_flops_per_s")
    return f"{measured}), {pct(record.get('mfu_nominal'))} of the nominal ({giga(nominal)})"


def one_line(record: Mapping[str, Any]) -> str:
    """A progress line for one record."""
    head = (
        f"{record['size']}px b{record['batch']} {record['precision']} "
        f"{'remat' if record['remat'] else 'no-remat'} {record['optimizer']}"
    )
    if record.get("status") != "ok":
        return f"{head}: {record.get('status')}"
    return (
        f"{head}: {record['img_it_per_s']:.3g} img-it/s "
        f"({record['s_per_image_iteration'] * 1e3:.1f} ms/img-it), {_mfu_summary(record)}, "
        f"compile {record['compile_s']:.1f} s"
    )


def markdown_report(report: Mapping[str, Any]) -> str:
    """The whole report as markdown: machine, table, extras."""
    machine = report["machine"]
    lines = [
        "# nstjax bench",
        "",
        f"- device: {machine['device_kind']} ({machine['backend']}), CPU: {machine['cpu']}, "
        f"{machine['cpu_count']} cores; jax {machine['jax']}",
        f"- loop: {report['loop']}; XLA_FLAGS: `{machine['xla_flags'] or '(none)'}`",
    ]
    nominal = report.get("nominal_flops_per_s", {})
    for fmt, rate in report.get("probes_flops_per_s", {}).items():
        lines.append(
            f"- peak ({fmt}) measured by a matmul probe in this run: {rate / 1e9:.1f} GFLOP/s; "
            + (f"nominal {nominal[fmt] / 1e9:.1f} GFLOP/s" if fmt in nominal else "nominal: none")
        )
    if report.get("bf16_note"):
        lines.append(f"- {report['bf16_note']}")
    lines += ["", markdown_table(report["results"])]
    if "largest" in report:
        largest = report["largest"]
        lines.append(
            f"- largest size at batch 1 ({largest['precision']}, remat {largest['remat']}): "
            f"{largest['largest_size'] or 'n/a'} {largest.get('note', '')}".rstrip()
        )
    if "time_to_result" in report:
        ttr = report["time_to_result"]
        if "error" in ttr:
            lines.append(f"- time to result: failed ({ttr['error']})")
        else:
            lines.append(
                f"- time to result, {ttr['steps']} steps at {ttr['size']} px: "
                f"cold {ttr['cold_s']:.1f} s, warm (compilation cache) {ttr['warm_s']:.1f} s"
            )
    return "\n".join(lines) + "\n"


def write_json(path: str | os.PathLike, report: Mapping[str, Any]) -> None:
    """Writes the report as indented JSON (atomically)."""
    atomic.write_text(path, json.dumps(report, indent=2, sort_keys=False) + "\n")


def plot_throughput(results: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> bool:
    """Plots img-it/s against batch size, one line per (size, precision, remat, optimizer).

    Returns:
        False (and writes nothing) when no record has a throughput.
    """
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float]]] = {}
    for r in results:
        if r.get("status") == "ok":
            label = (
                f"{r['size']}px {r['precision']} {'remat' if r['remat'] else ''} {r['optimizer']}"
            )
            series.setdefault(" ".join(label.split()), []).append((r["batch"], r["img_it_per_s"]))
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, points in sorted(series.items()):
        points.sort()
        ax.plot([b for b, _ in points], [t for _, t in points], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    batches = sorted({b for points in series.values() for b, _ in points})
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("batch size (runs per compiled step)")
    ax.set_ylabel("image-iterations per second")
    ax.set_title(f"nstjax throughput ({jax.devices()[0].device_kind})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return True


def write_all(report: Mapping[str, Any], output: str | os.PathLike) -> dict[str, Path]:
    """Writes ``bench.json``, ``bench.md`` and ``bench.png`` into ``output``; returns their paths."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = {"json": output / "bench.json", "markdown": output / "bench.md"}
    write_json(paths["json"], report)
    atomic.write_text(paths["markdown"], markdown_report(report))
    if plot_throughput(report["results"], output / "bench.png"):
        paths["plot"] = output / "bench.png"
    else:  # no case ran: an earlier run's plot must not stand beside these results
        (output / "bench.png").unlink(missing_ok=True)
    return paths
