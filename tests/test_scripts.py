"""Every script under ``scripts/`` runs: each answers ``--help``, each figure script makes its figure
on a tiny case, and the scripts' own measures agree with values derived by hand.

The scripts are thin mains over the library, run as ``python scripts/NAME.py`` (``scripts/`` is not
installed); the subprocesses here run them the same way, with this checkout first on the path
(the slow tier: a process per script). The fast tier runs each script's file as ``__main__`` in the
test's own process (``run_here``), whose imports are already loaded.
"""

import json
import math
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("*.py") if not p.name.startswith("_"))


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """A script run as a user runs it, from the checkout's root."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [*args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def run_here(monkeypatch, capsys):
    """Runs ``scripts/NAME.py ARGS`` as :func:`_run` does (from the checkout's root, ``scripts/``
    first on the path, the file run as ``__main__``) but in this process; returns what it printed
    and its exit status as a :class:`subprocess.CompletedProcess`."""
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))

    def run(script: str, *args: str) -> subprocess.CompletedProcess:
        argv = [f"scripts/{script}", *args]
        monkeypatch.setattr(sys, "argv", argv)
        try:
            runpy.run_path(argv[0], run_name="__main__")
            code, message = 0, ""
        except SystemExit as exit_:
            # As the interpreter ends: None is 0, a message is printed with status 1.
            code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
            message = "" if exit_.code is None or isinstance(exit_.code, int) else f"{exit_.code}\n"
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(argv, code, out, err + message)

    return run


def _table_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[1:]]


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help(script):
    done = _run(sys.executable, f"scripts/{script}", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:"), done.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help_in_this_process(script, run_here):
    done = run_here(script, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:"), done.stdout


def test_the_gpu_check_answers_help_and_rejects_a_typo():
    done = _run("bash", "scripts/gpu_check.sh", "--help")
    assert done.returncode == 0 and "--dry-run" in done.stdout, done.stderr
    bad = _run("bash", "scripts/gpu_check.sh", "--dry-rnu")
    assert bad.returncode == 2 and "--dry-rnu" in bad.stderr


# ----------------------------------------------------------------------------- sweep_psnr.py


def test_sweep_psnr_reports_each_finished_run(tmp_path, run_here):
    """A hand-made sweep folder: two finished runs (a photo and its copy darkened by a known
    amount), one unfinished; the PSNR is ``10 log10(1 / mse)`` of the 8-bit images."""
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    darker = np.clip(photo.astype(int) - 10, 0, 255).astype(np.uint8)
    Image.fromarray(photo).save(tmp_path / "content.png")
    for name, pixels, status in (
        ("a", photo, "done"),
        ("b", darker, "done"),
        ("c", photo, "failed"),
    ):
        folder = tmp_path / "runs" / name
        folder.mkdir(parents=True)
        Image.fromarray(pixels).save(folder / "image.png")
        record = {
            "status": status,
            "label": f"run {name}",
            "content": str(tmp_path / "content.png"),
        }
        (folder / "run.json").write_text(json.dumps(record))

    done = run_here("sweep_psnr.py", str(tmp_path))
    assert done.returncode == 0, done.stderr
    rows = _table_rows(done.stdout)
    assert [r[0] for r in rows] == ["run a", "run b"]
    mse = np.mean(((photo.astype(float) - darker) / 255.0) ** 2)
    assert float(rows[1][1]) == pytest.approx(10 * math.log10(1 / mse), abs=0.01)
    assert float(rows[0][1]) > 90  # identical images
    assert float(rows[1][2]) < 1.0  # SSIM below 1 for a changed image


def test_sweep_psnr_says_when_nothing_is_finished(tmp_path, run_here):
    done = run_here("sweep_psnr.py", str(tmp_path))
    assert done.returncode == 1 and "no finished runs" in done.stderr


# ----------------------------------------------------------------------------- compile_for_accelerators.py


def test_compile_report_tables_hold_the_recorded_bytes(run_here):
    """``--report`` on the committed records: each case's "GB at batch 1" is the recorded bytes."""
    records = json.loads((ROOT / "docs/benchmarks/compiled/cpu.json").read_text())["fits"]
    done = run_here("compile_for_accelerators.py", "--report", "docs/benchmarks/compiled")
    assert done.returncode == 0, done.stderr
    table = done.stdout.split("#### `cpu`")[1].split("####")[0]
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| 5")]
    assert len(rows) == len(records)
    for fit, row in zip(records, rows):
        assert int(row[0]) == fit["size"] and row[1].strip() == fit["optimizer"]
        assert float(row[4]) == pytest.approx(fit["total_bytes_by_batch"]["1"] / 1e9, abs=0.006)


# ----------------------------------------------------------------------------- reproduce_style_losses.py


def test_w2_1d_matches_hand_values(import_script):
    """Equal sizes: the mean squared difference of the sorted samples; unequal: the quantile
    functions' integral by hand."""
    w2_1d = import_script("reproduce_style_losses").w2_1d
    a, b = np.array([3.0, 0.0, 1.0]), np.array([1.0, 5.0, 2.0])
    assert w2_1d(a, b) == pytest.approx(np.mean((np.sort(a) - np.sort(b)) ** 2))
    # a = {0}; b = {0, 1}: quantiles 0 on [0, 1/2], then 0 against 1 on [1/2, 1]
    assert w2_1d(np.array([0.0]), np.array([0.0, 1.0])) == pytest.approx(0.5)
    assert w2_1d(a, a) == 0.0


def test_transfer_below_its_smallest_size_is_a_clear_error(run_here):
    done = run_here("reproduce_style_losses.py", "transfer", "--size", "16")
    assert done.returncode == 2
    assert "--size must be at least 24" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("figure", "size"), [("texture", 16), ("transfer", 24)])
def test_style_loss_figures_on_a_tiny_case(figure, size, real_weights, tmp_path):
    """Both figures at their smallest size with the real weights (2 L-BFGS steps): the grid
    and the table are written, one row per painting and loss; every run lowers its loss."""
    done = _run(
        sys.executable, "scripts/reproduce_style_losses.py", figure, "--size", str(size),
        "--steps", "2", "--directions", "4", "--workdir", str(tmp_path), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(tmp_path / f"style_losses_{figure}.png") as figure_png:
        assert figure_png.width > 3 * size
    rows = _table_rows((tmp_path / f"style_losses_{figure}.md").read_text())
    assert len(rows) == 6
    if figure == "transfer":
        for row in rows:
            assert float(row[5]) < float(row[4]), row  # style end < style start
    else:
        assert {row[1] for row in rows} == {"gram", "sliced_wasserstein"}
        assert all(float(value) > 0 for row in rows for value in row[2:])


# ----------------------------------------------------------------------------- bench_network_axis.py


@pytest.mark.slow
def test_bench_network_axis_measures_each_point_in_its_own_process(tmp_path):
    """Two points (K=1, K=2) of the loop form on the tiny case: a table row and a JSON record
    each; network 0 has the same setting in both, so its loss at the last step is the same number
    (the loop form runs one network's program whatever K is)."""
    out = tmp_path / "axis.json"
    done = _run(
        sys.executable, "scripts/bench_network_axis.py", "--tiny", "--size", "16",
        "--networks", "1", "2", "--forms", "loop", "--steps", "1", "--json", str(out),
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = _table_rows(done.stdout)
    assert [(r[0], r[1]) for r in rows] == [("loop", "1"), ("loop", "2")]
    assert rows[0][4] == rows[0][5] == "1.00"  # the reference against itself
    record = json.loads(out.read_text())
    assert "command" in record["machine"] and "cpu" in record["machine"]
    one, two = record["points"]
    assert len(one["loss"]) == 1 and len(two["loss"]) == 2
    assert one["loss"][0] == two["loss"][0] and two["loss"][1] != two["loss"][0]
    assert all(p["compile_s"] > 0 and p["step_s"] > 0 for p in record["points"])


# ------------------------------------------------------------------------ time_to_quality.py


def test_time_to_quality_rejects_a_bad_pair_in_one_line(tmp_path, run_here):
    done = run_here("time_to_quality.py", "--pairs", "chelsea.jpg",
                "--weights", str(tmp_path / "missing.h5"), "--output", str(tmp_path))  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--weights" in done.stderr
    h5 = tmp_path / "w.h5"
    h5.write_bytes(b"")
    done = run_here("time_to_quality.py", "--pairs", "chelsea.jpg",
                "--weights", str(h5), "--output", str(tmp_path))  # fmt: skip
    assert done.returncode == 2 and "'chelsea.jpg': expected CONTENT:STYLE" in done.stderr
    done = run_here("time_to_quality.py", "--pairs", "chelsea.jpg:great_wave.jpg",
                "--size", "40", "--weights", str(h5), "--output", str(tmp_path))  # fmt: skip
    assert done.returncode == 2 and "a side is 22 px; the measures need 24" in done.stderr
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"settings": {"size": 256}, "pairs": []}))
    done = run_here("time_to_quality.py", "--pairs", "chelsea.jpg:great_wave.jpg",
                "--known", str(earlier), "--weights", str(h5), "--output", str(tmp_path))  # fmt: skip
    assert done.returncode == 2 and "made with --size 256, not 512" in done.stderr
    assert not list(tmp_path.glob("time_to_quality.*"))


@pytest.mark.slow
@pytest.mark.weights
def test_time_to_quality_runs_a_tiny_case(tmp_path, real_h5):
    """40 px, 1% of each recipe's iterations: nstjax's default 500 -> 5 steps, neural-style's
    1000 -> 10 (when torch is importable), crowsonkb's 1000 -> 10 otherwise."""
    try:
        import torch  # noqa: F401

        recipes, last = ["nstjax", "neural-style-torch"], {"nstjax": 5, "neural-style-torch": 10}
    except ImportError:
        recipes, last = ["nstjax", "crowsonkb"], {"nstjax": 5, "crowsonkb": 10}
    done = _run(
        sys.executable, "scripts/time_to_quality.py", "--size", "40", "--budget", "0.01",
        "--checkpoints", "2", "--min-scale", "40", "--pairs", "chelsea.jpg:starry_night.jpg",
        "--recipes", *recipes, "--weights", str(real_h5), "--output", str(tmp_path),
        timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "time_to_quality.json").read_text())
    (pair,) = report["pairs"]
    for name, steps in last.items():
        points = pair["recipes"][name][0]["points"]
        assert points[-1]["step"] == steps
        assert all(-1 <= p[m] <= 1 for p in points for m in ("content_fidelity", "local_patterns"))
        seconds = [p["seconds"] for p in points]
        assert seconds == sorted(seconds) and seconds[0] > 0
    rows = _table_rows((tmp_path / "time_to_quality.md").read_text())
    assert [row[2] for row in rows] == recipes
    if "neural-style-torch" in recipes:
        assert rows[1][-1] == "1.00x"  # the reference against itself
    assert Image.open(tmp_path / "time_to_quality.png").size[0] > 600


# ------------------------------------------------------------------------ every script's bad input


def test_a_scripts_bad_input_is_one_line_not_a_traceback(tmp_path, run_here):
    """nstjax's one-line errors reach the user of a script as they do the CLI's (exit 2); a bad
    ``--cases`` entry is refused before any case runs (before: after the earlier ones, unsaved)."""
    missing = str(tmp_path / "missing.h5")
    done = run_here("reproduce_style_losses.py", "texture", "--weights", missing)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("reproduce_style_losses.py: error: weights file"), done.stderr
    out = str(tmp_path / "c.json")
    done = run_here("compare_torch.py", "--weights", missing, "--cases", "64", "256xabc",
                    "--output", out)  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "--cases '256xabc': expected SIZE or SIZExBATCH" in done.stderr
    assert not (tmp_path / "c.json").exists()
