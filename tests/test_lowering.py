"""Every program nstjax compiles lowers for GPUs and TPUs, with no host callback or CPU-only call.

No accelerator is needed: ``jax.export`` lowers a jitted function for ``("cuda", "tpu")`` on a
CPU-only machine, and its StableHLO text names every custom call. A CPU-only call (oneDNN's FFI
handlers, nstjax/kernels/onednn.py) or a Python host callback leaking into the optimisation loop would
compile and run on CPU but not on an accelerator, or would stall it on the host every step; these
tests make CI fail on either. The programs are built at a small size (tiny random VGG, 16x16,
batch 2-4) from abstract inputs (``jax.ShapeDtypeStruct``), so nothing is computed, only traced
and lowered. The sharded run axis uses an :class:`jax.sharding.AbstractMesh` of 4 devices: the
exported module carries the partitioning (``sdy.mesh``, per-argument shardings) without any
device being present.
"""

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import pytest
from jax import export
from jax.sharding import AbstractMesh, NamedSharding, PartitionSpec

from nstjax import engine, style_mix, targets, vgg
from nstjax.architecture import LAYER_NAMES, downsampling
from nstjax.kernels import onednn

PLATFORMS = ("cuda", "tpu")

ALLOWED_CUSTOM_CALLS = frozenset(
    {
        # GSPMD's partitioning markers (jax_use_shardy_partitioner=False): the SPMD partitioner
        # consumes them on every backend, they never reach a device.
        "Sharding",
        "SPMDFullToShardShape",
        "SPMDShardToFullShape",
        # Memory-kind placement (host offloading of remat residuals); handled by the GPU and TPU
        # compilers themselves.
        "annotate_device_placement",
        # The symmetric eigensolver of jnp.linalg.eigh (the Gaussian W2 style loss's matrix square
        # roots): cuSOLVER's on cuda, the TPU compiler's own on tpu. Both are device kernels that
        # jax.export lists with compatibility guarantees; neither calls back to the host.
        "cusolver_syevd_ffi",
        "Eigh",
    }
)
"""Custom-call targets allowed in an accelerator program. All are in jax.export's list of
targets with compatibility guarantees and are native to XLA's GPU and TPU compilers; anything
else (a host callback, a CPU FFI handler, another library call) fails the check."""

CPU_ONLY_CUSTOM_CALLS = frozenset({onednn.TARGET, onednn.BF16_TARGET, onednn.MATMUL_TARGET})
"""nstjax's own CPU FFI targets (oneDNN's convolutions and sgemm, registered for ``cpu`` only)."""

_CUSTOM_CALL = re.compile(
    r'custom_call\s*@([\w.$-]+)|custom_call"\s*\(.*?call_target_name\s*=\s*"([^"]+)"'
)


def custom_call_targets(module_text: str) -> list[str]:
    """Every custom-call target named in a StableHLO module's text, in order of appearance.

    Both spellings are read: the pretty ``stablehlo.custom_call @target(...)`` and the generic
    ``"stablehlo.custom_call"(...) {call_target_name = "target"}``.
    """
    return [a or b for a, b in _CUSTOM_CALL.findall(module_text)]


def forbidden_calls(module_text: str) -> dict[str, str]:
    """The custom calls of a module that an accelerator cannot run, each with the reason.

    Args:
        module_text: StableHLO text (``Exported.mlir_module()`` or ``Lowered.as_text()``).

    Returns:
        ``{target: reason}`` for every target outside :data:`ALLOWED_CUSTOM_CALLS`; empty when
        the module is fit for an accelerator.
    """
    found = {}
    for target in custom_call_targets(module_text):
        if target in ALLOWED_CUSTOM_CALLS:
            continue
        if "callback" in target:
            found[target] = "host callback"
        elif target in CPU_ONLY_CUSTOM_CALLS:
            found[target] = "CPU-only (nstjax oneDNN FFI)"
        else:
            found[target] = "not in the accelerator allow-list"
    return found


def export_checked(fn, *args, **kwargs) -> export.Exported:
    """``jax.export`` of ``fn`` for :data:`PLATFORMS`, asserting it has no forbidden call."""
    exported = export.export(fn, platforms=PLATFORMS)(*args, **kwargs)
    assert exported.platforms == PLATFORMS
    bad = forbidden_calls(exported.mlir_module())
    assert not bad, f"{getattr(fn, '__name__', fn)} is not fit for an accelerator: {bad}"
    return exported


# ----------------------------------------------------------------------------- the inputs

RUNS, SIZE, REGIONS = 2, 16, 3


def spec(shape, dtype=jnp.float32, sharding=None) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(shape), jnp.dtype(dtype), sharding=sharding)


def _side(name: str) -> int:
    return SIZE // downsampling(name)


def _channels(params, name: str) -> int:
    return params["params"][name]["kernel"].shape[-1]


def engine_inputs(params, program: engine.Program, runs: int = RUNS, by_run=None, replicated=None):
    """Abstract ``(params, state, hyper, targets)`` of a batch, built from the engine's types.

    Content features ``[R, h, w, C]`` in the program's dtype, style Grams ``[R, C, C]`` (guided:
    ``[R, K, C, C]`` and masks ``[R, K, h, w]``) in float32, at each layer's resolution.
    """
    r, n = runs, len(LAYER_NAMES)
    hyper = engine.Hyper(
        *(spec((r,), sharding=by_run) for _ in range(3)),
        spec((r, n), sharding=by_run),
        spec((r, n), sharding=by_run),
        spec((r,), sharding=by_run),
        spec((r,), bool, sharding=by_run),
    )
    content = {
        name: spec((r, _side(name), _side(name), _channels(params, name)), program.dtype, by_run)
        for name in program.content_layers
    }
    regions = (REGIONS,) if program.guided else ()
    style = {
        "gram": {
            name: spec(
                (r, *regions, _channels(params, name), _channels(params, name)), sharding=by_run
            )
            for name in program.style_layers
        }
    }
    masks = None
    if program.guided:
        masks = {
            name: spec((r, REGIONS, _side(name), _side(name)), sharding=by_run)
            for name in program.style_layers
        }
    pixels = spec((r, SIZE, SIZE, 3))
    state = jax.eval_shape(functools.partial(engine.init_state, program), pixels)
    if by_run is not None:
        state = jax.tree.map(
            lambda s: spec(s.shape, s.dtype, by_run if s.ndim else replicated), state
        )
    params = jax.tree.map(lambda a: spec(a.shape, a.dtype, replicated), params)
    return params, state, hyper, engine.Targets(content, style, masks)


@pytest.fixture(scope="module")
def params():
    """The tiny random VGG, unprepared: XLA's own convolutions (the accelerator path)."""
    return vgg.init_params(jax.random.key(0))


PROGRAMS = {
    "adam": engine.Program(),
    "lbfgs": engine.Program(optimizer="lbfgs", lbfgs_history=5),
    "lbfgs_wolfe": engine.Program(optimizer="lbfgs_wolfe", lbfgs_history=5),
    "guided": engine.Program(guided=True),
    "bf16": engine.Program(dtype="bfloat16"),
    "remat": engine.Program(remat=True),
    "lbfgs_bf16_remat": engine.Program(optimizer="lbfgs", dtype="bfloat16", remat=True),
}


# ----------------------------------------------------------------------------- the programs


@pytest.mark.parametrize("name", PROGRAMS)
def test_train_step_lowers(params, name):
    program = PROGRAMS[name]
    args = engine_inputs(params, program)
    exported = export_checked(engine.train_step, *args, program=program)
    pixels_out = exported.out_avals[0]  # State.pixels comes first in the flattened output
    assert pixels_out.shape == (RUNS, SIZE, SIZE, 3)
    assert exported.out_avals[-1].shape == (RUNS, len(engine.STEP_COLUMNS))


@pytest.mark.parametrize("name", ["adam", "lbfgs"])
def test_train_chunk_lowers(params, name):
    program = PROGRAMS[name]
    args = engine_inputs(params, program)
    exported = export_checked(
        engine.train_chunk, *args, spec((), jnp.int32), program=program, length=3
    )
    assert exported.out_avals[-1].shape == (3, RUNS, len(engine.STEP_COLUMNS))
    assert "stablehlo.while" in exported.mlir_module()  # the steps stay on the device


def test_evaluate_lowers(params):
    program = PROGRAMS["guided"]
    p, state, hyper, run_targets = engine_inputs(params, program)
    exported = export_checked(engine.evaluate, p, state.pixels, hyper, run_targets, program=program)
    assert exported.out_avals[0].shape == (RUNS, len(engine.METRICS))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_target_functions_lower(params, dtype):
    p = jax.tree.map(lambda a: spec(a.shape, a.dtype), params)
    layers, kw = ("conv1_1", "conv4_2", "conv5_1"), {"pooling": "avg", "dtype": dtype}
    feats = export_checked(
        targets.content_features, p, spec((2, SIZE, SIZE, 3)), layers=layers, **kw
    )
    program = style_mix.StyleProgram(("gram",), (layers,))
    grams = export_checked(targets.style_targets, p, spec((SIZE, SIZE, 3)), program=program, **kw)
    widths = [_channels(params, n) for n in sorted(layers)]
    assert sorted(a.shape[-1] for a in feats.out_avals) == sorted(widths)
    assert all(a.dtype == jnp.dtype(dtype) for a in feats.out_avals)
    assert sorted(a.shape for a in grams.out_avals) == sorted((c, c) for c in widths)


@pytest.mark.parametrize("fn", ["step", "chunk"])
def test_run_axis_sharded_over_four_devices(params, fn):
    """The run axis over a 4-device mesh, params replicated: one partitioned program."""
    mesh = AbstractMesh((4,), ("runs",))
    by_run = NamedSharding(mesh, PartitionSpec("runs"))
    replicated = NamedSharding(mesh, PartitionSpec())
    program = PROGRAMS["adam"]
    args = engine_inputs(params, program, runs=4, by_run=by_run, replicated=replicated)
    if fn == "step":
        exported = export_checked(engine.train_step, *args, program=program)
    else:
        exported = export_checked(
            engine.train_chunk, *args, spec((), jnp.int32, replicated), program=program, length=2
        )
    assert exported.nr_devices == 4
    text = exported.mlir_module()
    assert re.search(r'sdy\.mesh @\w+ = <\["runs"=4\]>', text) or "num_partitions = 4" in text
    pixels = re.search(r'sdy\.sharding = (#sdy\.sharding<[^>]*>)\} loc\("state\.pixels"\)', text)
    assert pixels, "no sharding on the pixels argument"
    assert pixels.group(1).endswith('[{"runs"}, {}, {}, {}]>'), pixels.group(1)


def test_flipped_kernels_lower(params):
    """The prepared-kernel custom VJP (the CPU mesh's convolution) is plain XLA too."""
    program = dataclasses.replace(PROGRAMS["adam"], convolution="flipped")
    _, state, hyper, run_targets = engine_inputs(params, program)
    flipped = jax.tree.map(lambda a: spec(a.shape, a.dtype), vgg.prepare(params, "flipped"))
    export_checked(engine.train_step, flipped, state, hyper, run_targets, program=program)


# ----------------------------------------------------------------------------- the checker


def test_checker_flags_onednn_kernels(params):
    """oneDNN-prepared params put CPU-only FFI calls into the step: the checker must see them."""
    if not onednn.available():
        pytest.skip(f"oneDNN unavailable: {onednn.unavailable_reason()}")
    program = dataclasses.replace(PROGRAMS["adam"], convolution="onednn")
    _, state, hyper, run_targets = engine_inputs(params, program)
    prepared = vgg.prepare(params, "onednn")
    lowered = engine.train_step.trace(prepared, state, hyper, run_targets, program=program).lower()
    bad = forbidden_calls(lowered.as_text())
    assert bad.get(onednn.TARGET) == "CPU-only (nstjax oneDNN FFI)"
    assert bad.get(onednn.MATMUL_TARGET) == "CPU-only (nstjax oneDNN FFI)"
    with pytest.raises(ValueError, match="custom calls"):  # and jax.export refuses it outright
        export.export(engine.train_step, platforms=PLATFORMS)(
            prepared, state, hyper, run_targets, program=program
        )


def test_checker_flags_host_callbacks():
    def leaky(x):
        jax.debug.callback(lambda v: None, x)
        return jax.pure_callback(lambda v: v, jax.ShapeDtypeStruct(x.shape, x.dtype), x) * 2

    text = jax.jit(leaky).lower(jnp.ones(3)).as_text()  # a host callback cannot lower for cuda
    bad = forbidden_calls(text)
    assert bad and set(bad.values()) == {"host callback"}


def test_checker_reads_both_spellings_and_allows_the_list():
    pretty = '%1 = stablehlo.custom_call @Sharding(%0) {backend_config = ""} : (tensor<4xf32>)'
    generic = '%2 = "stablehlo.custom_call"(%1) {call_target_name = "cublas_gemm", x = 1}'
    assert custom_call_targets(pretty + "\n" + generic) == ["Sharding", "cublas_gemm"]
    assert forbidden_calls(pretty) == {}
    assert forbidden_calls(generic) == {"cublas_gemm": "not in the accelerator allow-list"}
    assert forbidden_calls("%3 = stablehlo.add %1, %2 : tensor<4xf32>") == {}


# ----------------------------------------------------------------------------- on a real GPU


def _gpu():
    try:
        return jax.devices("gpu")[0]
    except RuntimeError:
        return None


@pytest.mark.gpu
@pytest.mark.skipif(_gpu() is None, reason="no GPU")
@pytest.mark.parametrize("name", ["adam", "lbfgs_bf16_remat"])
def test_step_on_the_gpu_matches_the_cpu(params, name):
    """Two steps of the tiny VGG on the GPU against the same two steps on the CPU backend."""
    import numpy as np

    program = PROGRAMS[name]
    p, state, hyper, run_targets = engine_inputs(params, program)
    rng = np.random.default_rng(0)
    concrete = lambda s: jnp.asarray(rng.uniform(0.0, 1.0, s.shape), s.dtype)
    hyper = jax.tree.map(concrete, hyper)._replace(normalize_gradients=None)
    run_targets = jax.tree.map(concrete, run_targets)
    pixels = rng.uniform(0, 255, (RUNS, SIZE, SIZE, 3)).astype(np.float32)  # fresh per call

    def two_steps(device):
        with jax.default_device(device), jax.default_matmul_precision("highest"):
            args = jax.device_put((params, hyper, run_targets), device)
            state = engine.init_state(program, jax.device_put(pixels, device))
            for _ in range(2):
                state, metrics = engine.train_step(args[0], state, *args[1:], program=program)
            return np.asarray(state.pixels), np.asarray(metrics)

    gpu_pixels, gpu_metrics = two_steps(_gpu())
    cpu_pixels, cpu_metrics = two_steps(jax.devices("cpu")[0])
    tol = 2e-2 if program.dtype == "bfloat16" else 1e-4
    np.testing.assert_allclose(gpu_metrics, cpu_metrics, rtol=tol)
    np.testing.assert_allclose(gpu_pixels, cpu_pixels, rtol=tol, atol=tol * 255)


# ----------------------------------------------------------------------------- compile-only helpers


def test_compiled_abstract_inputs_match_the_hand_built_ones(params, import_script):
    """scripts/_compile_only.py builds the same abstract batch as this module does by hand."""
    compiled = import_script("_compile_only")

    program = PROGRAMS["lbfgs_bf16_remat"]
    ours = engine_inputs(params, program)
    theirs = compiled.abstract_inputs(params, program, RUNS, SIZE)
    shapes = lambda tree: jax.tree.map(lambda s: (s.shape, jnp.dtype(s.dtype)), tree)
    assert shapes(theirs) == shapes(ours)


def test_fit_and_largest_batch_by_hand(import_script):
    compile_only = import_script("_compile_only")
    fit_batches, largest_batch = compile_only.fit_batches, compile_only.largest_batch

    fixed, per_run = fit_batches({1: 130, 2: 230})  # 30 + 100 per run
    assert (fixed, per_run) == (30.0, 100.0)
    assert largest_batch(fixed, per_run, 1030) == 10
    assert largest_batch(fixed, per_run, 1029) == 9
    assert largest_batch(fixed, per_run, 20) == 0


def test_kernel_launches_counts_work_not_plumbing(import_script):
    kernel_launches = import_script("_compile_only").kernel_launches

    hlo = """HloModule m

%fused (p: f32[4]) -> f32[4] {
  %p = f32[4]{0} parameter(0)
  ROOT %e = f32[4]{0} exponential(%p)
}

ENTRY %main (a: f32[4], b: f32[4]) -> (f32[4], f32[4]) {
  %a = f32[4]{0} parameter(0)
  %b = f32[4]{0} parameter(1)
  %f = f32[4]{0} fusion(%a), kind=kLoop, calls=%fused
  %c = (f32[4]{0}, s8[16]{0}) custom-call(%f, %b), custom_call_target="__cudnn$convForward"
  %g = f32[4]{0} get-tuple-element(%c), index=0
  %k = f32[4]{0} bitcast(%g)
  ROOT %t = (f32[4]{0}, f32[4]{0}) tuple(%k, %f)
}
"""

    class Fake:
        def as_text(self):
            return hlo

    assert kernel_launches(Fake()) == 2  # the fusion and the cuDNN call


# ----------------------------------------------------------------------------- later programs


def test_the_style_loss_family_lowers(params):
    """Every style loss in one program (a batch mixing them), built by the package's builder:
    eigh (Gaussian W2), sorts (sliced Wasserstein, histogram), the MRF's chunked matching and the
    per-step random directions all lower for cuda and tpu without a host call."""
    import numpy as np

    from nstjax.batch import build, plan
    from nstjax.run import Options, Run

    mix = "gram:1,mean_std:1,gaussian_w2:1,sliced_wasserstein:1,histogram:1,mrf:1"
    runs = [Run(style_loss=mix, style_layers=("conv1_1", "conv2_1", "conv3_1")), Run()]
    program = plan.program_for(runs, Options(), "xla")
    assert set(program.style_losses) == {
        "gram", "mean_std", "gaussian_w2", "sliced_wasserstein", "histogram", "mrf"
    }  # fmt: skip
    image = np.random.default_rng(0).random((32, 32, 3)).astype(np.float32)
    built = build.build(params, program, runs, [image], [image])
    state = engine.init_state(program, jax.numpy.asarray(built.pixels))
    export_checked(engine.train_step, params, state, built.hyper, built.targets, program=program)


@pytest.mark.parametrize("network_axis", ["unroll", "vmap"])
def test_the_feed_forward_training_step_lowers(params, network_axis):
    """K networks' training step (nstjax.feedforward, with the non-finite guard) and the
    network's inference."""
    from nstjax.feedforward import network, step

    objective = step.Objective(network.TransformerNet(width=4, residual_blocks=1), ("conv2_1",),
                               ("conv1_1", "conv2_1"), network_axis=network_axis)  # fmt: skip
    k, batch = 2, 2
    state = jax.eval_shape(
        lambda: step.init_state(objective, jax.random.key(0), jnp.full((k,), 1e-3))
    )
    grams = {
        n: spec((k, _channels(params, n), _channels(params, n))) for n in ("conv1_1", "conv2_1")
    }
    hyper = step.Hyper(
        *(spec((k,)) for _ in range(3)), spec((k, 16)), spec((k, 16)),
        style_loss_weights=spec((k, 1)), max_nonfinite_steps=spec((k,), jnp.int32),
        style_key=spec((k, 2), jnp.uint32),
    )  # fmt: skip
    targets = step.Targets(style={"gram": grams})
    train = jax.jit(step.train_step, static_argnums=2)
    exported = export_checked(train, state, params, objective, spec((batch, SIZE, SIZE, 3)),
                              targets, hyper, spec((), jnp.int32))  # fmt: skip
    assert exported.out_avals[-2].shape == (k, len(step.METRICS))  # the metrics
    assert exported.out_avals[-1].shape == (k,)  # which networks' steps were rejected
    one = jax.tree.map(lambda s: spec(s.shape[1:], s.dtype), state.params)
    infer = jax.jit(lambda p, x: step.stylise({"params": p}, objective.net, x))
    export_checked(infer, one, spec((1, 20, 28, 3)))
