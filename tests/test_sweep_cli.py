"""``nstjax sweep`` end to end, in subprocesses: kill -9 and resume, two processes sharing a sweep,
four (virtual CPU) devices against one, and the ``:quick`` paper grid with the real weights.

The mechanics use the tiny random VGG: the subprocesses run the real CLI with
``nstjax.vgg.load_params`` swapped for :func:`nstjax.vgg.init_params` (see ``DRIVER``).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # several processes running the CLI, kill -9

DRIVER = textwrap.dedent(
    """
    import sys
    import jax
    from nstjax import vgg
    vgg.load_params = lambda path=None: vgg.init_params(jax.random.key(0))
    from nstjax.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def write_config(path: Path, images_dir: Path, styles: int, steps: int, size: int = 32) -> Path:
    """A sweep of 2 style weights x ``styles`` styles, on the layers up to conv2_1 (quick to
    compile)."""
    names = ["starry_night.jpg", "great_wave.jpg", "the_scream.jpg", "composition_vii.jpg"]
    path.write_text(
        textwrap.dedent(
            f"""
            from nstjax.sweep import default_config

            def get_config(arg=None):
                config = default_config()
                config.data.content = [{str(images_dir / "tubingen.jpg")!r}]
                config.data.style = {[str(images_dir / n) for n in names[:styles]]!r}
                config.data.size = {size}
                config.loss.content_layers = ["conv2_1"]
                config.loss.style_layers = ["conv1_1", "conv2_1"]
                config.optim.steps = {steps}
                config.optim.learning_rate = 2.0
                config.sweep.axes.style_weight = [10.0, 1000.0]
                config.sweep.chunk = {steps}
                return config
            """
        )
    )
    return path


def tiny_cli(args, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, **kwargs.pop("env", {}))
    return subprocess.Popen(
        [sys.executable, "-c", DRIVER, "sweep", *map(str, args)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out}\n{err}"
    return out


def run_records(workdir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in workdir.glob("runs/*/run.json")}


def temporaries(workdir: Path) -> list[Path]:
    return [p for p in workdir.rglob(".*") if ".tmp" in p.name]


def test_kill_9_then_resume(images_dir, tmp_path):
    config = write_config(tmp_path / "sweep.py", images_dir, styles=4, steps=400)
    workdir = tmp_path / "work"
    args = ["--config", config, "--workdir", workdir, "--batch-size", 2]
    proc = tiny_cli(args)
    deadline = time.monotonic() + 240
    while not list(workdir.glob("runs/*/run.json")):  # the first batch has finished
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no run finished in time"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = {p.parent.name: p.stat().st_mtime_ns for p in workdir.glob("runs/*/run.json")}
    assert 0 < len(killed) < 8, "the sweep finished before the kill: make the batches longer"
    for run_id in killed:  # whatever is marked finished is complete
        assert (workdir / "runs" / run_id / "image.png").stat().st_size > 0

    out = finish(tiny_cli(args))
    assert f"{len(killed)} finished earlier; computing {8 - len(killed)} in" in out
    assert f"computed {8 - len(killed)} run(s)" in out
    records = run_records(workdir)
    assert sorted(records) == [f"{i:04d}" for i in range(8)]
    assert {r["status"] for r in records.values()} == {"done"}
    assert {k: (workdir / "runs" / k / "run.json").stat().st_mtime_ns for k in killed} == killed
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["counts"] == {"pending": 0, "done": 8, "failed": 0}
    assert temporaries(workdir) == []
    assert len((workdir / "summary.csv").read_text().splitlines()) == 9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_share_one_sweep(images_dir, tmp_path):
    config = write_config(tmp_path / "sweep.py", images_dir, styles=3, steps=3)
    workdir = tmp_path / "work"
    address = f"127.0.0.1:{free_port()}"
    args = ["--config", config, "--workdir", workdir, "--batch-size", 2]
    first = tiny_cli([*args, "--coordinator", address, "--num-processes", 2, "--process-id", 0])
    second = tiny_cli(  # the same from the environment
        args,
        env={
            "NSTJAX_COORDINATOR": address,
            "NSTJAX_NUM_PROCESSES": "2",
            "NSTJAX_PROCESS_ID": "1",
        },
    )
    outs = [finish(first), finish(second)]
    assert "process 0: computed 3 run(s)" in outs[0]
    assert "process 1: computed 3 run(s)" in outs[1]  # 3 + 3 = 6 runs: none twice
    records = run_records(workdir)
    assert sorted(records) == [f"{i:04d}" for i in range(6)]
    # one group of 6 runs: the first half to process 0, the second to process 1
    assert [records[f"{i:04d}"]["process"] for i in range(6)] == [0, 0, 0, 1, 1, 1]
    assert "sweep: 6 done, 0 failed" in outs[0]
    manifest = json.loads((workdir / "manifest.json").read_text())
    assert manifest["counts"] == {"pending": 0, "done": 6, "failed": 0}
    assert (workdir / "contact_sheet.png").exists()
    assert temporaries(workdir) == []


SHARDED = textwrap.dedent(
    """
    import json, sys
    import jax
    import numpy as np
    from nstjax import api, engine, vgg
    from nstjax.config import load_config
    from nstjax.sweep import RunSettings, distributed, prepare, run_sweep

    assert jax.local_device_count() == 4, jax.devices()
    devices_seen = []
    optimize = engine.optimize
    def spy(params, program, problem, *args, **kwargs):
        pixels = problem.pixels
        devices_seen.append(len(pixels.sharding.device_set) if hasattr(pixels, "sharding") else 1)
        return optimize(params, program, problem, *args, **kwargs)
    engine.optimize = spy

    params = vgg.init_params(jax.random.key(0))
    sweep = prepare(load_config(sys.argv[1]))
    out = {}
    for name, mesh in (("one", None), ("four", distributed.local_mesh())):
        devices_seen.clear()
        settings = RunSettings(mesh=mesh, batch_size=3)
        outcome = run_sweep(sweep, sys.argv[2] + "/" + name, params, settings)
        out[name] = {"devices": list(devices_seen), "batch_sizes": outcome.batch_sizes}
    print("RESULT", json.dumps(out))
    """
)


def test_sharded_over_four_devices_equals_one_device(images_dir, tmp_path):
    config = write_config(tmp_path / "sweep.py", images_dir, styles=3, steps=4)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    proc = subprocess.run(
        [sys.executable, "-c", SHARDED, config, tmp_path],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    assert result["one"] == {"devices": [1, 1], "batch_sizes": [3, 3]}
    assert result["four"] == {"devices": [4, 4], "batch_sizes": [4, 4]}  # padded to 4
    one, four = run_records(tmp_path / "one"), run_records(tmp_path / "four")
    assert sorted(one) == sorted(four) == [f"{i:04d}" for i in range(6)]
    for run_id in one:
        for metric in ("loss", "content", "style", "tv"):
            np.testing.assert_allclose(
                four[run_id]["history"][metric], one[run_id]["history"][metric], rtol=1e-5
            )
        np.testing.assert_allclose(
            four[run_id]["final"]["loss"], one[run_id]["final"]["loss"], rtol=1e-5
        )
        a, b = (
            np.asarray(Image.open(tmp_path / name / "runs" / run_id / "image.png"), int)
            for name in ("one", "four")
        )
        assert np.abs(a - b).max() <= 1


@pytest.mark.weights
def test_quick_paper_grid_with_the_real_weights(real_params, tmp_path):
    workdir = tmp_path / "grid"
    config = REPO / "configs" / "sweep_style_weight.py:quick"
    proc = subprocess.run(
        [sys.executable, "-m", "nstjax", "sweep", "--config", config, "--workdir", workdir],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sweep: 25 done, 0 failed" in proc.stdout
    records = run_records(workdir)
    assert len(records) == 25
    for record in records.values():
        hyper = record["hyperparameters"]
        ratio = float(record["coords"]["content_style_ratio"])
        assert hyper["content_weight"] / hyper["style_weight"] == pytest.approx(ratio)
        assert hyper["style_layers"] == record["coords"]["style_layers"].split("+")
        history = record["history"]["loss"]
        assert np.isfinite(record["final"]["loss"]) and record["final"]["loss"] < history[0]
    with Image.open(next((workdir / "runs").glob("*/image.png"))) as one:
        aspect = one.height / one.width  # the example photo is 3:2; cells are 64 px wide
    with Image.open(workdir / "contact_sheet.png") as sheet:
        assert sheet.width > 5 * 64 and sheet.height > 5 * 64 * aspect
