"""MFU against the nominal and the measured peak, and whether bf16 is worth it on this machine.

Every figure is hand-derived; timings are monkeypatched (nothing here asserts a speed).
"""

import json
import types

import jax
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nstjax.bench import bf16_speed, mfu, peaks, report, suite

# ----------------------------------------------------------------------------- MFU arithmetic


def test_mfu_against_both_peaks():
    # 100 GFLOP/s achieved, a 200 GFLOP/s probe, a 400 GFLOP/s datasheet peak.
    fields = mfu.utilisation(100e9, 200e9, 400e9)
    assert fields["mfu"] == 0.5 and fields["mfu_nominal"] == 0.25
    assert fields["peak_flops_per_s"] == 200e9 and fields["peak_source"] == "probe"
    assert fields["probe_flops_per_s"] == 200e9 and fields["nominal_peak_flops_per_s"] == 400e9


def test_a_step_faster_than_the_probe_is_the_measured_peak():
    fields = mfu.utilisation(300e9, 200e9, None)
    assert fields["peak_flops_per_s"] == 300e9 and fields["peak_source"] == "step"
    assert fields["mfu"] == 1.0
    assert fields["probe_flops_per_s"] == 200e9  # the probe's own figure is kept
    assert fields["mfu_nominal"] is None and fields["nominal_peak_flops_per_s"] is None


def test_mfu_is_none_where_a_figure_is_missing():
    assert mfu.utilisation(None, 200e9, 400e9)["mfu"] is None
    assert mfu.utilisation(None, 200e9, 400e9)["mfu_nominal"] is None
    assert mfu.utilisation(None, 200e9, None)["peak_source"] == "probe"
    missing_probe = mfu.utilisation(100e9, None, 400e9)
    assert missing_probe["mfu"] is None and missing_probe["mfu_nominal"] == 0.25


@given(
    achieved=st.floats(1e6, 1e16, allow_nan=False),
    probe=st.floats(1e6, 1e16, allow_nan=False),
)
def test_mfu_against_the_measured_peak_never_exceeds_one(achieved, probe):
    fields = mfu.utilisation(achieved, probe, None)
    assert 0 < fields["mfu"] <= 1
    assert fields["peak_flops_per_s"] == max(achieved, probe)
    assert (fields["peak_source"] == "step") == (achieved > probe)


def _timed_case(monkeypatch, probe_flops_per_s, nominal=None):
    """suite._rates for a 32 px batch-2 fp32 case whose step costs 20 GFLOP (XLA's count,
    monkeypatched) and takes 0.5 s: 4 img-it/s x 10 GFLOP = 40 GFLOP/s achieved."""
    monkeypatch.setattr(suite.flops, "cost_analysis_flops", lambda compiled: 20e9)
    monkeypatch.setattr(suite.peaks, "nominal_peak", lambda device, precision: nominal)
    case = suite.Case(32, 2, "fp32", False, "adam", "xla")
    compiled = types.SimpleNamespace(compiled_step=None)
    result = types.SimpleNamespace(per_iteration_s=0.5)
    probes = {"fp32": probe_flops_per_s}  # already probed: nothing is timed
    return suite._rates(None, case, compiled, result, 20, probes, {})


def test_suite_rates_from_hand_values(monkeypatch):
    nominal = peaks.Peak(160e9, "datasheet", "fp32")
    record = _timed_case(monkeypatch, 50e9, nominal)
    assert record["img_it_per_s"] == 4.0
    assert record["model_flops_per_image"] == 10e9
    assert record["achieved_flops_per_s"] == 40e9
    assert record["mfu"] == pytest.approx(0.8, rel=1e-12)
    assert record["mfu_nominal"] == pytest.approx(0.25, rel=1e-12)
    assert record["number_format"] == "fp32" and record["peak_source"] == "probe"


def test_the_report_never_shows_more_than_100_percent(monkeypatch):
    """A step at 40 GFLOP/s against a 30 GFLOP/s probe: 100%, flagged, in every output."""
    record = _timed_case(monkeypatch, 30e9)
    record.update(
        size=32, batch=2, precision="fp32", remat=False, optimizer="adam", status="ok",
        compile_s=1.0, spread=0.01, peak_bytes_per_image=None, compiled_bytes_per_image=None,
    )  # fmt: skip
    assert record["mfu"] == 1.0 and record["peak_source"] == "step"
    table = report.markdown_table([record])
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    cells = [c.strip() for c in table.splitlines()[2].strip("|").split("|")]
    row = dict(zip(header, cells))
    assert row["MFU (measured peak)"] == "100.0%"
    assert row["GFLOP/s"] == "40.0" and row["measured peak GFLOP/s"] == "40.0 (step)"
    assert row["MFU (nominal peak)"] == "n/a"
    assert report.STEP_PEAK_NOTE in table
    line = report.one_line(record)
    assert "MFU 100.0% of the measured peak (40.0 GFLOP/s" in line
    assert "faster than the matmul probe's 30.0 GFLOP/s" in line
    assert "of the nominal (n/a)" in line


def test_report_without_a_step_beating_the_probe_has_no_note(monkeypatch):
    record = _timed_case(monkeypatch, 50e9)
    record.update(size=32, batch=2, precision="fp32", remat=False, optimizer="adam", status="ok")
    table = report.markdown_table([record])
    assert report.STEP_PEAK_NOTE not in table and "(step)" not in table
    assert "| 80.0% |" in table


# ----------------------------------------------------------------------------- peaks


def test_nominal_peaks_exist_for_known_accelerators_only():
    h100 = types.SimpleNamespace(platform="gpu", device_kind="NVIDIA H100 80GB HBM3")
    assert peaks.nominal_peak(h100, "default").flops_per_s == pytest.approx(494.7e12)  # TF32
    assert peaks.nominal_peak(h100, "bf16").flops_per_s == pytest.approx(989.4e12)
    assert peaks.nominal_peak(jax.devices("cpu")[0], "fp32") is None
    unknown = types.SimpleNamespace(platform="gpu", device_kind="Some Future Chip")
    assert peaks.nominal_peak(unknown, "bf16") is None
    assert suite.nominal_peaks(h100, ("fp32", "default")) == {
        "fp32": pytest.approx(66.9e12),
        "tf32": pytest.approx(494.7e12),
    }


def test_probe_size_and_format():
    assert peaks.probe_matrix_size("cpu", 256) == 256
    assert peaks.probe_matrix_size("gpu", 256) == peaks.ACCELERATOR_PROBE_SIZE
    assert peaks.probe_matrix_size("tpu", 16384) == 16384
    assert peaks.PROBE_OF_FORMAT["tf32"][1] == "default"  # TF32 is fp32 at default precision
    assert peaks.PROBE_OF_FORMAT["fp32"][1] == "highest"


def test_one_probe_per_number_format(monkeypatch):
    """On a CPU "fp32" and "default" are both fp32: one probe, one log line."""
    calls = []

    def probe(dtype, n, repeats=5, device=None, precision="highest"):
        calls.append((jax.numpy.dtype(dtype).name, n, precision))
        return 1e9 * len(calls)

    monkeypatch.setattr(peaks, "matmul_probe", probe)
    lines = []
    probes = suite.probe_peaks(jax.devices("cpu")[0], ("fp32", "default", "bf16"), 64, lines.append)
    assert calls == [("float32", 64, "highest"), ("bfloat16", 64, "default")]
    assert probes == {"fp32": 1e9, "bf16": 2e9}
    assert len(lines) == 2 and "nominal n/a" in lines[0]


def test_accelerators_probe_a_large_matmul_in_the_step_format(monkeypatch):
    calls = []
    probe = lambda dtype, n, repeats=5, device=None, precision="highest": (
        calls.append((jax.numpy.dtype(dtype).name, n, precision)) or 1e12
    )
    monkeypatch.setattr(peaks, "matmul_probe", probe)
    h100 = types.SimpleNamespace(platform="gpu", device_kind="NVIDIA H100 80GB HBM3")
    peak = peaks.device_peak(h100, "default", {}, probe_size=1024)
    assert peak == peaks.Peak(1e12, "probe", "tf32")
    assert calls == [("float32", peaks.ACCELERATOR_PROBE_SIZE, "default")]


# ----------------------------------------------------------------------------- bf16 speed


@pytest.fixture
def timed(monkeypatch, tmp_path):
    """Replaces the bf16 probe by given timings; counts its calls. The default cache is this
    test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    state = types.SimpleNamespace(calls=0, times={"float32_s": 1.0, "bfloat16_s": 3.0})

    def probe_seconds(convolution, repeats=bf16_speed.REPEATS):
        state.calls += 1
        return dict(state.times)

    monkeypatch.setattr(bf16_speed, "probe_seconds", probe_seconds)
    monkeypatch.setattr(bf16_speed.jax, "default_backend", lambda: "cpu")
    return state


def test_bf16_slower_is_noted_once_measured(timed, tmp_path):
    cache = tmp_path / "bf16.json"
    note = bf16_speed.note("bfloat16", "onednn", cache)
    assert note.startswith("nstjax: note: VGG's convolutions (onednn kernels) run 3.0x slower")
    assert "in float32 on this machine" in note
    assert "running in bfloat16 as asked" in note and "\n" not in note
    assert not bf16_speed.bf16_is_faster("onednn", cache)
    assert bf16_speed.note("float32", "onednn", cache) is None
    assert timed.calls == 1  # measured once, then read from the cache
    stored = json.loads(cache.read_text())
    assert stored == {bf16_speed.machine_key("onednn"): {"float32_s": 1.0, "bfloat16_s": 3.0}}


def test_bf16_faster_is_not_noted(timed, tmp_path):
    timed.times = {"float32_s": 1.1, "bfloat16_s": 1.0}  # exactly FASTER_BY
    assert bf16_speed.bf16_is_faster("onednn", tmp_path / "c.json")
    assert bf16_speed.note("bfloat16", "onednn", tmp_path / "c.json") is None


def test_bf16_no_faster_is_noted_as_such(timed, tmp_path):
    timed.times = {"float32_s": 1.0, "bfloat16_s": 0.95}  # 5% faster: within FASTER_BY
    note = bf16_speed.note("bfloat16", "flipped", tmp_path / "c.json")
    assert "no faster than in float32 (0.95x the time)" in note


def test_cache_is_keyed_by_machine_and_convolution(timed, tmp_path, monkeypatch):
    cache = tmp_path / "c.json"
    bf16_speed.measured("onednn", cache)
    bf16_speed.measured("flipped", cache)  # another convolution: measured again
    assert timed.calls == 2
    key = bf16_speed.machine_key("onednn")
    assert report.cpu_model() in key and f"jax {jax.__version__}" in key and "onednn" in key
    monkeypatch.setattr(bf16_speed, "cpu_model", lambda: "Another CPU")
    bf16_speed.measured("onednn", cache)  # another CPU model: measured again
    assert timed.calls == 3
    assert len(json.loads(cache.read_text())) == 3


def test_a_damaged_cache_is_measured_again(timed, tmp_path):
    cache = tmp_path / "c.json"
    cache.write_text("{not json")
    assert bf16_speed.measured("onednn", cache) == {"float32_s": 1.0, "bfloat16_s": 3.0}
    cache.write_text(json.dumps({bf16_speed.machine_key("onednn"): {"float32_s": -1}}))
    bf16_speed.measured("onednn", cache)
    assert timed.calls == 2


def test_accelerators_are_assumed_faster(timed, tmp_path, monkeypatch):
    monkeypatch.setattr(bf16_speed.jax, "default_backend", lambda: "gpu")
    assert bf16_speed.measured("xla", tmp_path / "c.json") is None
    assert bf16_speed.bf16_is_faster("xla", tmp_path / "c.json")
    assert bf16_speed.note("bfloat16", "xla", tmp_path / "c.json") is None
    assert timed.calls == 0 and not (tmp_path / "c.json").exists()


def test_note_if_slower_prints_one_line_to_stderr(timed, capsys):
    # The default cache (under XDG_CACHE_HOME, a temporary folder in the tests).
    bf16_speed.note_if_slower("bfloat16", "onednn")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3.0x slower" in err
    bf16_speed.note_if_slower("float32", "onednn")
    assert capsys.readouterr().err == ""


def test_the_probe_runs_both_dtypes(monkeypatch):
    """The real probe's mechanics on one small layer (its timings are not asserted)."""
    monkeypatch.setattr(bf16_speed, "LAYERS", ((8, 4),))
    times = bf16_speed.probe_seconds("flipped", repeats=1)
    assert set(times) == {"float32_s", "bfloat16_s"}
    assert all(t > 0 for t in times.values())


def test_stylize_notes_a_slow_bf16_once(timed, tmp_path, monkeypatch, tiny_params, capsys):
    """``nstjax stylize --dtype bfloat16`` on the tiny VGG (16 px, 2 steps) prints the note on a
    machine measured slower in bf16, and still writes its image; float32 never probes."""
    from nstjax import vgg
    from nstjax.cli import main
    from nstjax.image import save_image

    monkeypatch.setenv("NSTJAX_COMPILATION_CACHE", "0")
    monkeypatch.setattr(vgg, "load_params", lambda *a, **k: tiny_params)
    pixels = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    save_image(tmp_path / "c.png", pixels[0])
    save_image(tmp_path / "s.png", pixels[1])
    argv = ["stylize", "--size", "16", "--steps", "2", "--content", str(tmp_path / "c.png")]
    argv += ["--style", str(tmp_path / "s.png"), "--overwrite", "--output"]
    assert main([*argv, str(tmp_path / "f32.png")]) == 0
    assert timed.calls == 0 and "note" not in capsys.readouterr().err
    assert main([*argv, str(tmp_path / "b16.png"), "--dtype", "bfloat16"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "nstjax: note:" in line]
    assert len(notes) == 1 and "3.0x slower" in notes[0]
    assert timed.calls == 1 and (tmp_path / "b16.png").is_file()
