"""The benchmark's mechanics: FLOP counts, timing checks, peaks, memory, reports, the CLI."""

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from nstjax import engine
from nstjax.bench import flops, memory, peaks, report, suite, timing
from nstjax.bench.problem import make_problem
from nstjax.errors import NstjaxError

ROOT = Path(__file__).resolve().parents[1]
BENCH_CONFIG = str(ROOT / "configs" / "bench.py")
TINY_CHANNELS = (4, 8, 8, 16, 16)


# ----------------------------------------------------------------------------- FLOPs


def test_hand_count_reproduces_the_performance_table():
    """The written-out count gives performance.md's totals (24.8 GF at 128 px, ...)."""
    for size, gflop in flops.PERFORMANCE_MD_GFLOP.items():
        assert flops.hand_count(size, size) / 1e9 == pytest.approx(gflop, rel=2e-3)
    # and its forward column: 11.8 GF to conv5_1, 12.7 GF to conv5_4 at 128 px
    assert flops.conv_forward_flops(128, 128) / 1e9 == pytest.approx(11.8, rel=5e-3)
    assert flops.conv_forward_flops(128, 128, "conv5_4") / 1e9 == pytest.approx(12.7, rel=5e-3)


def _conv(x, kernel):
    return jax.lax.conv_general_dilated(
        x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def test_cost_analysis_counts_a_tiny_conv_net_like_a_hand_count():
    """XLA's FLOPs of two 3x3 convolutions, forward and forward + input gradient, match
    2 * Cin * Cout * (in-bounds taps) counted by hand (SAME padding: (3H-2)(3W-2) taps per
    output channel pair, i.e. 2 H W Cin Cout 9 without the borders)."""
    h, w, c0, c1, c2 = 16, 12, 3, 8, 16
    keys = jax.random.split(jax.random.key(0), 3)
    k1 = jax.random.normal(keys[0], (3, 3, c0, c1))
    k2 = jax.random.normal(keys[1], (3, 3, c1, c2))
    x = jax.random.normal(keys[2], (1, h, w, c0))

    def net(x):
        y = _conv(jax.nn.relu(_conv(x, k1)), k2)
        return jnp.sum(y * y)

    taps = (3 * h - 2) * (3 * w - 2)
    forward_by_hand = 2 * taps * (c0 * c1 + c1 * c2)
    assert forward_by_hand < 2 * h * w * 9 * (c0 * c1 + c1 * c2)  # borders have fewer taps
    forward = flops.cost_analysis_flops(jax.jit(net).lower(x).compile())
    both = flops.cost_analysis_flops(jax.jit(jax.grad(net)).lower(x).compile())
    # the rest (ReLU, square, sum) is a few FLOPs per element
    assert forward == pytest.approx(forward_by_hand, rel=0.03)
    assert both == pytest.approx(2 * forward_by_hand, rel=0.05)


def test_engine_step_flops_agree_with_the_hand_count(tiny_params):
    """The compiled engine step of a tiny VGG costs about the hand count (one image)."""
    program = engine.Program()
    problem = make_problem(tiny_params, program, 2, 32)
    state = engine.init_state(program, problem.pixels)
    compiled = engine.train_step.lower(
        tiny_params, state, problem.hyper, problem.targets, program=program
    ).compile()
    per_image = flops.cost_analysis_flops(compiled) / 2
    hand = flops.hand_count(32, 32, channels=TINY_CHANNELS)
    # elementwise work is relatively larger with 4..16 channels; borders count less
    assert per_image == pytest.approx(hand, rel=0.15)
    assert memory.compiled_bytes(compiled) > 0


# ----------------------------------------------------------------------------- timing


class Counter:
    """A fake loop whose state is a step counter; ``skip`` makes it lose one step per call."""

    def __init__(self, skip_on_call: int | None = None):
        self.calls = 0
        self.skip_on_call = skip_on_call

    def advance(self, state, n):
        self.calls += 1
        lost = 1 if self.calls == self.skip_on_call else 0
        return jnp.int32(state + n - lost)


def fake_clock(ticks):
    it = iter(ticks)
    return lambda: next(it)


def test_time_loop_reports_the_median_and_separates_the_compile():
    # warm-up call 10 s, then runs of 3, 1 and 2 s (clock readings in pairs)
    clock = fake_clock([0.0, 10.0, 10.0, 13.0, 13.0, 14.0, 14.0, 16.0])
    result, state = timing.time_loop(
        Counter().advance, jnp.int32(0), iterations=4, repeats=3, step_of=int, clock=clock
    )
    assert int(state) == 1 + 3 * 4
    assert result.run_s == (3.0, 1.0, 2.0)
    assert result.median_s == 2.0
    assert result.per_iteration_s == 0.5
    assert result.first_call_s == 10.0
    assert result.compile_s == pytest.approx(10.0 - 0.5)  # first call minus one warm step
    assert result.spread() == pytest.approx(1.0)


def test_time_loop_catches_a_loop_that_skips_iterations():
    with pytest.raises(timing.IterationMismatch, match="advanced by 4, expected 5"):
        timing.time_loop(Counter(skip_on_call=3).advance, jnp.int32(0), iterations=5, step_of=int)


def test_time_loop_needs_three_runs():
    with pytest.raises(ValueError, match="at least 3"):
        timing.time_loop(Counter().advance, jnp.int32(0), iterations=1, repeats=2, step_of=int)


def test_engine_loop_advances_the_step_counter(tiny_params):
    """The bench's compiled loops (python and scan) run exactly the iterations they claim."""
    case = suite.Case(16, 2, "default", False, "adam")
    for loop, chunk in (("python", 1), ("scan", 3)):
        compiled = suite.CompiledLoop(tiny_params, case, loop, chunk, 5)
        result, state = timing.time_loop(
            compiled.advance,
            compiled.state,
            iterations=4,
            warmup=2,
            step_of=lambda s: int(s.step),
            compile_s=compiled.compile_s,
        )
        assert int(state.step) == 2 + 3 * 4
        assert result.compile_s == compiled.compile_s  # passed through, not re-timed


# ----------------------------------------------------------------------------- peaks, memory


def test_peak_table():
    assert peaks.table_peak("NVIDIA H100 80GB HBM3", "bf16").flops_per_s == pytest.approx(989.4e12)
    assert peaks.table_peak("NVIDIA H100 80GB HBM3", "tf32").flops_per_s == pytest.approx(494.7e12)
    assert peaks.table_peak("NVIDIA H100 80GB HBM3", "fp32").flops_per_s == pytest.approx(66.9e12)
    assert peaks.table_peak("NVIDIA H100 PCIe", "bf16").flops_per_s == pytest.approx(756e12)
    assert peaks.table_peak("NVIDIA H200", "bf16", measured=True).flops_per_s == 798e12
    assert peaks.table_peak("NVIDIA A100-SXM4-80GB", "tf32").flops_per_s == pytest.approx(156e12)
    assert peaks.table_peak("TPU v5 lite", "bf16").flops_per_s == pytest.approx(197e12)
    assert peaks.table_peak("Some Future Chip", "bf16") is None
    assert peaks.number_format("gpu", "default") == "tf32"
    assert peaks.number_format("cpu", "default") == "fp32"
    assert peaks.number_format("tpu", "fp32") == "fp32"
    assert peaks.number_format("cpu", "bf16") == "bf16"
    with pytest.raises(ValueError):
        peaks.number_format("cpu", "fp64")


def test_cpu_peak_comes_from_a_probe():
    probes = {}
    peak = peaks.device_peak(jax.devices("cpu")[0], "fp32", probes, probe_size=128)
    assert peak.source == "probe"  # its figure is a measurement: no bound on it holds everywhere
    assert probes == {"fp32": peak.flops_per_s}


def test_largest_fitting_stops_at_the_first_oom():
    def try_size(size):
        if size >= 2048:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate")

    largest, tried = memory.largest_fitting(try_size, [2048, 1024, 1536, 4096], "gpu")
    assert largest == 1536
    assert tried == {1024: "ok", 1536: "ok", 2048: "oom"}
    assert memory.largest_fitting(try_size, [1024], "cpu") == (None, {})
    assert memory.peak_bytes_in_use(jax.devices("cpu")[0]) is None


# ----------------------------------------------------------------------------- reports


def _record(**changes):
    record = dict(
        size=128, batch=4, precision="bf16", remat=True, optimizer="adam", status="ok",
        img_it_per_s=5.0, s_per_image_iteration=0.2, mfu=0.123, model_flops_per_image=24.2e9,
        xla_over_hand=0.975, compile_s=6.5, spread=0.04, peak_bytes_per_image=None,
        compiled_bytes_per_image=60e6,
    )  # fmt: skip
    record.update(changes)
    return record


def test_markdown_table():
    table = report.markdown_table([_record(), _record(batch=32, status="oom")])
    lines = table.strip().splitlines()
    assert lines[0].startswith("| px | batch | precision |")
    assert len(lines) == 4
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:9] == ["128", "4", "bf16", "on", "adam", "5", "200.0", "12.3%", "24.2"]
    assert "n/a" in cells  # no memory_stats on CPU
    assert "oom" in lines[3]


def test_json_and_plot(tmp_path):
    result = {
        "machine": report.machine_info(),
        "loop": "python",
        "probes_flops_per_s": {"fp32": 1.2e11},
        "config": {},
        "results": [_record(batch=1, img_it_per_s=4.0), _record()],
    }
    paths = report.write_all(result, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["results"][1]["mfu"] == 0.123
    assert "| 128 | 4 | bf16 |" in paths["markdown"].read_text()
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- config and CLI


def test_bench_config_variants():
    from nstjax.config import load_config

    quick = load_config(BENCH_CONFIG + ":quick")
    assert quick.sizes == (32,) and tuple(quick.batch_sizes) == (1, 2)
    full = load_config(BENCH_CONFIG)
    assert len(suite.cases_of(full)) == 3 * 4 * 3 * 2 * 2
    with pytest.raises(NstjaxError, match="unknown variant"):
        load_config(BENCH_CONFIG + ":huge")


def test_bench_cli_rejects_a_bad_field_before_loading_anything(tmp_path, capsys):
    from nstjax.cli import main

    status = main(
        ["bench", "--config", BENCH_CONFIG + ":quick", "--output", str(tmp_path),
         "--config.precisions=fp64"]
    )  # fmt: skip
    assert status == 2
    assert "precisions" in capsys.readouterr().err


@pytest.mark.weights
@pytest.mark.slow
def test_bench_quick_end_to_end(real_params, tmp_path, monkeypatch):
    """``nstjax bench --config configs/bench.py:quick`` with the real weights: every case runs and
    is reported. Its throughput and MFU are measurements of the machine: no bound on them holds on
    every CPU (a boosting one exceeds the nominal peak), so none is asserted."""
    from nstjax.cli import main
    from nstjax.config import load_config

    monkeypatch.setenv("NSTJAX_COMPILATION_CACHE", "0")
    out = tmp_path / "bench"
    assert main(["bench", "--config", BENCH_CONFIG + ":quick", "--output", str(out)]) == 0
    result = json.loads((out / "bench.json").read_text())
    records = result["results"]
    assert len(records) == len(suite.cases_of(load_config(BENCH_CONFIG + ":quick")))
    for r in records:
        assert r["status"] == "ok"
        assert r["iterations"] >= 1 and r["repeats"] >= 3
        assert {"img_it_per_s", "mfu", "s_per_image_iteration"} <= r.keys()
        assert r["model_flops_per_image"] == pytest.approx(flops.hand_count(32, 32), rel=0.25)
    assert (out / "bench.md").read_text().count("\n| 32 |") == len(records)
    assert (out / "bench.png").is_file()
    assert os.environ.get("NSTJAX_WEIGHTS")
