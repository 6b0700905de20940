"""Runs a benchmark config: every (size, batch, precision, remat, optimizer) case, then extras.

Each case compiles the engine's step ahead of time (``jax.jit(...).lower(...).compile()``, timed:
the compile time), reads XLA's cost analysis and memory analysis from that same executable, and
times the loop that :func:`nstjax.engine.optimize` would run on this backend (a Python loop over
the compiled step on CPU, ``lax.scan`` chunks elsewhere) with :func:`nstjax.bench.timing.time_loop`.
"""

import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from nstjax import engine, kernels, vgg
from nstjax.bench import bf16_speed, flops, memory, mfu, peaks, timing
from nstjax.bench.problem import make_problem, pattern
from nstjax.optim import LBFGS_HISTORY


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark configuration."""

    size: int
    batch: int
    precision: str  # one of peaks.PRECISIONS
    remat: bool
    optimizer: str
    convolution: str = "xla"  # chosen once per suite (nstjax.kernels.choose)

    def label(self) -> str:
        remat = "remat" if self.remat else "no-remat"
        return f"{self.size}px b{self.batch} {self.precision} {remat} {self.optimizer}"


@dataclasses.dataclass(frozen=True)
class Measurement:
    """How every case of a suite is run and timed.

    Attributes:
        iterations: steps timed per repeat (with ``loop="scan"``, rounded to whole chunks).
        repeats: timed repeats.
        loop: the engine's loop, ``"python"`` or ``"scan"`` (:func:`nstjax.engine.default_loop`).
        chunk: steps per compiled call of the ``"scan"`` loop.
        lbfgs_history: the L-BFGS optimisers' curvature pairs.
    """

    iterations: int
    repeats: int
    loop: str
    chunk: int
    lbfgs_history: int = LBFGS_HISTORY


@contextlib.contextmanager
def precision_context(precision: str) -> Iterator[None]:
    """The matmul/conv precision to trace under: ``highest`` for ``fp32``, the default otherwise."""
    if precision not in peaks.PRECISIONS:
        raise ValueError(f"precision must be one of {peaks.PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        with jax.default_matmul_precision("highest"):
            yield
    else:
        yield


def program_for(case: Case, lbfgs_history: int = LBFGS_HISTORY) -> engine.Program:
    """The engine program of a case (bf16 activations for ``bf16``, fp32 otherwise)."""
    return engine.Program(
        convolution=case.convolution,
        optimizer=case.optimizer,
        lbfgs_history=lbfgs_history,
        dtype="bfloat16" if case.precision == "bf16" else "float32",
        remat=case.remat,
    )


class CompiledLoop:
    """A case's compiled program and the loop that advances its state.

    Attributes:
        state: the current engine state.
        compiled_step: the compiled single step (its cost and memory analysis are read).
        compile_s: seconds spent compiling the program(s) the loop runs.
    """

    def __init__(self, params, case: Case, loop: str, chunk: int, lbfgs_history: int):
        self.params, self.loop, self.chunk = params, loop, chunk
        program = program_for(case, lbfgs_history)
        problem = make_problem(params, program, case.batch, case.size)
        self.hyper, self.targets = problem.hyper, problem.targets
        self.state = engine.init_state(program, problem.pixels)
        start = time.perf_counter()
        with precision_context(case.precision):
            self.compiled_step = engine.train_step.lower(
                params, self.state, self.hyper, self.targets, program=program
            ).compile()
            step_compile_s = time.perf_counter() - start
            self.compiled_chunk = None
            if loop == "scan":
                start = time.perf_counter()
                self.compiled_chunk = engine.train_chunk.lower(
                    params,
                    self.state,
                    self.hyper,
                    self.targets,
                    jnp.int32(chunk),
                    program=program,
                    length=chunk,
                ).compile()
        self.compile_s = time.perf_counter() - start if loop == "scan" else step_compile_s

    def advance(self, state, n: int):
        """Runs ``n`` steps from ``state`` (asynchronously) with the engine's own loop
        (:func:`nstjax.engine.advance`) over this case's compiled executables."""
        runner = engine.Loop(self.compiled_step, self.compiled_chunk, self.chunk)
        done = 0
        while done < n:
            valid = min(runner.length if runner.chunk else n, n - done)
            state, _ = engine.advance(runner, self.params, state, self.hyper, self.targets, valid)
            done += valid
        return state


def model_flops(params, case: Case, lbfgs_history: int, cache: dict) -> float | None:
    """XLA's FLOPs per call of the case's step WITHOUT rematerialisation and with XLA's own
    convolutions (the model's FLOPs: XLA's cost analysis does not see inside oneDNN's custom
    calls).

    Cached by everything but ``remat``; compiles the plain step for its analysis.
    """
    params = {k: v for k, v in params.items() if k != "prepared"}
    key = (case.size, case.batch, case.precision, case.optimizer)
    if key not in cache:
        plain = dataclasses.replace(case, remat=False, convolution="xla")
        program = program_for(plain, lbfgs_history)
        problem = make_problem(params, program, case.batch, case.size)
        state = engine.init_state(program, problem.pixels)
        with precision_context(case.precision):
            compiled = engine.train_step.lower(
                params, state, problem.hyper, problem.targets, program=program
            ).compile()
        cache[key] = flops.cost_analysis_flops(compiled)
    return cache[key]


def run_case(
    params, case: Case, measurement: Measurement, *, probes: dict, flops_cache: dict
) -> dict[str, Any]:
    """Benchmarks one case; returns its record (see ``docs/benchmarks.md`` for the fields).

    Args:
        params: VGG parameters prepared for ``case.convolution``.
        case: the case.
        measurement: how it is run and timed.
        probes: the measured peaks by number format (:func:`probe_peaks`).
        flops_cache: :func:`model_flops`'s cache, shared by the suite's cases.
    """
    iterations, loop, chunk = measurement.iterations, measurement.loop, measurement.chunk
    lbfgs_history = measurement.lbfgs_history
    device = jax.devices()[0]
    record: dict[str, Any] = {**dataclasses.asdict(case), "loop": loop}
    peak_before = memory.peak_bytes_in_use(device)
    try:
        compiled = CompiledLoop(params, case, loop, chunk, lbfgs_history)
        if loop == "scan":
            iterations = max(chunk, iterations // chunk * chunk)
        result, _ = timing.time_loop(
            compiled.advance,
            compiled.state,
            iterations=iterations,
            repeats=measurement.repeats,
            warmup=chunk if loop == "scan" else 1,
            step_of=lambda s: int(s.step),
            compile_s=compiled.compile_s,
        )
    except Exception as e:
        if memory.is_oom(e):
            record["status"] = "oom"
            return record
        raise
    peak_after = memory.peak_bytes_in_use(device)
    per_image = lambda v: None if v is None else v / case.batch
    record.update(
        status="ok",
        iterations=result.iterations,
        repeats=len(result.run_s),
        run_s=list(result.run_s),
        spread=result.spread(),
        compile_s=result.compile_s,
        s_per_iteration=result.per_iteration_s,
        peak_bytes_per_image=per_image(peak_after),
        peak_bytes_rose=None if peak_after is None else peak_after != peak_before,
        compiled_bytes_per_image=per_image(memory.compiled_bytes(compiled.compiled_step)),
        **_rates(params, case, compiled, result, lbfgs_history, probes, flops_cache),
    )
    return record


def _rates(params, case, compiled, result, lbfgs_history, probes, flops_cache) -> dict:
    """Throughput, FLOPs (XLA's, the model's, by hand) and MFU (:mod:`nstjax.bench.mfu`)."""
    device = jax.devices()[0]
    per_image_s = result.per_iteration_s / case.batch
    hardware = flops.cost_analysis_flops(compiled.compiled_step)
    plain = not case.remat and case.convolution == "xla"
    model = hardware if plain else model_flops(params, case, lbfgs_history, flops_cache)
    hand = flops.hand_count(case.size, case.size)
    probe = peaks.device_peak(device, case.precision, probes)  # probed once, in run_suite
    nominal = peaks.nominal_peak(device, case.precision)
    throughput = 1.0 / per_image_s
    per_image = lambda v: None if v is None else v / case.batch
    return dict(
        s_per_image_iteration=per_image_s,
        img_it_per_s=throughput,
        number_format=probe.number_format,
        model_flops_per_image=per_image(model),
        xla_flops_per_image=per_image(hardware),
        hand_flops_per_image=hand,
        xla_over_hand=None if model is None else model / case.batch / hand,
        **mfu.utilisation(
            None if model is None else throughput * model / case.batch,
            probe.flops_per_s,
            nominal.flops_per_s if nominal else None,
        ),
    )


def cases_of(config) -> list[Case]:
    """The grid of a config, small to large (so the memory high-water mark rises case by case)."""
    return [
        Case(size, batch, precision, bool(remat), optimizer)
        for size in sorted(config.sizes)
        for batch in sorted(config.batch_sizes)
        for optimizer in config.optimizers
        for remat in config.remat
        for precision in config.precisions
    ]


def largest_size(params, config, convolution: str) -> dict[str, Any]:
    """The largest image that runs a step at batch 1 (accelerators only; ``None`` on CPU)."""
    spec = config.largest
    device = jax.devices()[0]

    def try_size(size: int) -> None:
        case = Case(size, 1, spec.precision, bool(spec.remat), spec.optimizer, convolution)
        compiled = CompiledLoop(params, case, "python", 1, config.lbfgs_history)
        jax.block_until_ready(compiled.advance(compiled.state, 2))

    largest, outcome = memory.largest_fitting(try_size, spec.sizes, device.platform)
    return {
        "largest_size": largest,
        "tried": {str(k): v for k, v in outcome.items()},
        "precision": spec.precision,
        "remat": bool(spec.remat),
        "optimizer": spec.optimizer,
        "note": "not tried on CPU (host memory is shared)" if device.platform == "cpu" else "",
    }


def time_to_result(config, workdir: Path, weights: str | None) -> dict[str, Any]:
    """Wall time of ``nstjax stylize`` run twice with a fresh compilation cache: cold, then warm.

    The second call finds the first call's compiled programs in the persistent cache, so the
    difference is the compile time a user saves.
    """
    spec = config.time_to_result
    from nstjax.image import save_image

    workdir.mkdir(parents=True, exist_ok=True)
    content, style = workdir / "ttr_content.png", workdir / "ttr_style.png"
    save_image(content, pattern(spec.size, spec.size, seed=1))
    save_image(style, pattern(spec.size, spec.size, seed=100))
    env = dict(os.environ)
    times = []
    with tempfile.TemporaryDirectory(prefix="nstjax-ttr-cache-") as cache:
        env["NSTJAX_COMPILATION_CACHE"] = cache
        for _ in range(2):
            command = [
                sys.executable, "-m", "nstjax", "stylize",
                "--content", str(content), "--style", str(style),
                "--output", str(workdir / "ttr_output.png"),
                "--size", str(spec.size), "--steps", str(spec.steps), "--overwrite",
            ]  # fmt: skip
            if weights:
                command += ["--weights", weights]
            start = time.perf_counter()
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
                return {"size": spec.size, "steps": spec.steps, "error": " ".join(tail)}
    return {"size": spec.size, "steps": spec.steps, "cold_s": times[0], "warm_s": times[1]}


def probe_peaks(device, precisions, probe_size: int, log: Callable[[str], None]) -> dict:
    """The measured peak of every number format the precisions use (FLOP/s by format)."""
    probes: dict[str, float] = {}
    size = peaks.probe_matrix_size(device.platform, probe_size)
    for precision in precisions:
        if peaks.number_format(device.platform, precision) in probes:
            continue  # e.g. "fp32" and "default" on a CPU: one probe
        peak = peaks.device_peak(device, precision, probes, size)
        nominal = peaks.nominal_peak(device, precision)
        log(
            f"matmul probe {peak.number_format} ({size}x{size}): "
            f"{peak.flops_per_s / 1e9:.1f} GFLOP/s measured, nominal "
            + (f"{nominal.flops_per_s / 1e9:.1f} GFLOP/s" if nominal else "n/a")
        )
    return probes


def nominal_peaks(device, precisions) -> dict:
    """The datasheet peak of every number format the precisions use (FLOP/s; empty on CPUs)."""
    found = {p: peaks.nominal_peak(device, p) for p in precisions}
    return {peak.number_format: peak.flops_per_s for peak in found.values() if peak}


def run_suite(
    params, config, *, workdir: Path, weights: str | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Runs a whole config; returns the report (metadata and one record per case)."""
    from nstjax.bench import report

    device = jax.devices()[0]
    loop = config.loop or engine.default_loop()
    convolution = config.get("convolution") or kernels.choose()
    params = vgg.prepare(params, convolution)
    log(f"convolution: {convolution}")
    probes = probe_peaks(device, config.precisions, config.probe_size, log)
    bf16_note = None
    if "bf16" in config.precisions:
        bf16_note = bf16_speed.note("bfloat16", convolution)
        if bf16_note:
            log(bf16_note)
    flops_cache: dict = {}
    measurement = Measurement(
        iterations=config.iterations,
        repeats=config.repeats,
        loop=loop,
        chunk=config.chunk,
        lbfgs_history=config.lbfgs_history,
    )
    results = []
    for case in cases_of(config):
        case = dataclasses.replace(case, convolution=convolution)
        record = run_case(params, case, measurement, probes=probes, flops_cache=flops_cache)
        results.append(record)
        log(report.one_line(record))
    out = {
        "machine": report.machine_info(),
        "loop": loop,
        "convolution": convolution,
        "probes_flops_per_s": probes,
        "nominal_flops_per_s": nominal_peaks(device, config.precisions),
        "bf16_note": bf16_note,
        "config": config.to_dict(),
        "results": results,
    }
    if config.largest.enabled:
        out["largest"] = largest_size(params, config, convolution)
        log(f"largest size at batch 1: {out['largest']['largest_size'] or 'n/a'}")
    if config.time_to_result.enabled:
        out["time_to_result"] = time_to_result(config, workdir, weights)
        log(f"time to result: {out['time_to_result']}")
    return out
