"""The optimisation step compiled for a device that is not attached, and the compiler's numbers.

``jax.experimental.topologies.get_topology_desc`` gives *compile-only* devices: a TPU through
libtpu (``pip install libtpu``, the version ``jax[tpu]`` pins), an NVIDIA GPU through the CUDA
plugin (``pip install jax-cuda12-plugin``, without its ``with-cuda`` extra) given a
``GpuTargetConfigProto`` describing the GPU (:data:`H100_SXM_TARGET_CONFIG`). A program lowered
with abstract inputs placed on such a device compiles with that device's compiler, here, without
the device; ``compiled.memory_analysis()`` is the compiler's buffer assignment for it (arguments,
outputs, temporaries). No array is ever allocated, so a 2048 px step "fits" on a laptop.

Memory of a batch is affine in the batch size: a fixed part (the VGG parameters, their casts)
plus a per-run part (activations kept for the backward pass, optimiser state, targets). Compiling
each case at two batch sizes separates them (:func:`fit_batches`); the largest batch that fits a
device is then ``(capacity - fixed) // per_run`` (:func:`largest_batch`).
"""

import dataclasses
import functools
import os
import re
import time
from typing import Any

import jax
import jax.numpy as jnp

from nstjax import engine, targets, vgg
from nstjax.architecture import LAYER_NAMES

VGG19_CHANNELS = (64, 128, 256, 512, 512)

H100_SXM_TARGET_CONFIG = """
gpu_device_info {
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_core: 233472
  threads_per_core_limit: 2048
  core_count: 132
  fpus_per_core: 128
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: 3352320000000
  l2_cache_size: 52428800
  clock_rate_ghz: 1.98
  device_memory_size: 84942979072
  shared_memory_per_block_optin: 232448
  cuda_compute_capability { major: 9 minor: 0 }
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}
platform_name: "CUDA"
dnn_version_info { major: 9 minor: 8 }
device_description_str: "NVIDIA H100 80GB HBM3"
"""
"""An H100 SXM 80 GB as XLA's GPU compiler sees it: the fields of XLA's own
``xla/backends/gpu/target_config/specs/h100_sxm.txtpb`` that jaxlib 0.10's proto knows."""

TARGETS: dict[str, dict[str, Any]] = {
    "h100": {
        "platform": "cuda",
        "topology_name": "",
        "kwargs": {"target_config": H100_SXM_TARGET_CONFIG, "topology": "1x1x1"},
    },
    # libtpu's smallest v5e topology is one host of 2x2 chips; the step uses one of them.
    "v5e": {"platform": "tpu", "topology_name": "v5e:2x2", "kwargs": {}},
}
"""Compile-only targets: ``get_topology_desc`` arguments by name."""


def setup_environment() -> None:
    """Environment the plugins need before ``jax`` initialises its backends (call first).

    The CUDA plugin refuses to register without CUDA libraries unless its version check is
    skipped; compiling needs none of them (PTX is compiled by the plugin itself).
    """
    os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")


def compile_only_device(target: str) -> jax.Device:
    """The first compile-only device of a :data:`TARGETS` entry, or ``"cpu"``: the host's CPU.

    Raises:
        Exception: whatever the plugin raises when it is missing or refuses the description.
    """
    if target == "cpu":
        return jax.devices("cpu")[0]
    from jax.experimental import topologies

    spec = TARGETS[target]
    topology = topologies.get_topology_desc(
        spec["topology_name"], spec["platform"], **spec["kwargs"]
    )
    return topology.devices[0]


@dataclasses.dataclass(frozen=True)
class Case:
    """One compiled step: image size, optimiser, activation dtype, remat, batch size."""

    size: int
    optimizer: str = "adam"
    dtype: str = "float32"
    remat: bool = False
    batch: int = 1

    def program(self) -> engine.Program:
        """The engine program (default layers: content conv4_2, style conv1_1 ... conv5_1)."""
        return engine.Program(optimizer=self.optimizer, dtype=self.dtype, remat=self.remat)

    def label(self) -> str:
        remat = "remat" if self.remat else "no-remat"
        return f"{self.size}px b{self.batch} {self.optimizer} {self.dtype} {remat}"


def abstract_inputs(params, program: engine.Program, batch: int, size: int, sharding=None):
    """``(params, state, hyper, targets)`` of a batch as ``jax.ShapeDtypeStruct``, on ``sharding``.

    Shapes come from the engine's types and :mod:`nstjax.targets` (content features in the
    program's dtype, the style losses' float32 targets), traced with ``jax.eval_shape``: nothing is computed.

    Args:
        params: VGG parameters (arrays or ``ShapeDtypeStruct``; only shapes are read).
        program: the static program.
        batch: runs R.
        size: square image side.
        sharding: where every input lives (e.g. ``SingleDeviceSharding(device)``).
    """

    def place(x):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), params)
    image = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
    kw = {"pooling": program.pooling, "dtype": program.dtype}
    content = jax.eval_shape(
        functools.partial(targets.content_features, layers=program.content_layers, **kw),
        shapes,
        image,
    )
    one = jax.ShapeDtypeStruct((size, size, 3), jnp.float32)
    found = jax.eval_shape(
        functools.partial(targets.style_targets, program=program.style, **kw), shapes, one
    )
    style = jax.tree.map(lambda g: jax.ShapeDtypeStruct((batch, *g.shape), g.dtype), found)
    per_run = jax.ShapeDtypeStruct((batch,), jnp.float32)
    layer_weights = jax.ShapeDtypeStruct((batch, len(LAYER_NAMES)), jnp.float32)
    hyper = engine.Hyper(
        per_run, per_run, per_run, layer_weights, layer_weights, per_run,
        jax.ShapeDtypeStruct((batch,), jnp.bool_),
    )  # fmt: skip
    state = jax.eval_shape(functools.partial(engine.init_state, program), image)
    return jax.tree.map(place, (shapes, state, hyper, engine.Targets(content=content, style=style)))


def compile_step(params, case: Case, device: jax.Device) -> tuple[Any, Any, float]:
    """Compiles the engine's ``train_step`` for ``case`` on ``device`` (possibly compile-only).

    Returns:
        ``(compiled, lowered, compile_seconds)``.
    """
    sharding = jax.sharding.SingleDeviceSharding(device)
    program = case.program()
    args = abstract_inputs(params, program, case.batch, case.size, sharding)
    lowered = engine.train_step.lower(*args, program=program)
    start = time.perf_counter()
    compiled = lowered.compile()
    return compiled, lowered, time.perf_counter() - start


MEMORY_FIELDS = (
    "argument_size_in_bytes",
    "output_size_in_bytes",
    "alias_size_in_bytes",
    "temp_size_in_bytes",
    "generated_code_size_in_bytes",
)


def memory_record(compiled) -> dict[str, int] | None:
    """The compiler's memory analysis as a dict, plus ``total_bytes`` = arguments + outputs +
    temporaries - aliased (a donated state counted once); None where there is none."""
    stats = compiled.memory_analysis()
    if stats is None:
        return None
    record = {name: int(getattr(stats, name)) for name in MEMORY_FIELDS}
    record["total_bytes"] = (
        record["argument_size_in_bytes"]
        + record["output_size_in_bytes"]
        + record["temp_size_in_bytes"]
        - record["alias_size_in_bytes"]
    )
    return record


def _first(analysis):
    if isinstance(analysis, (list, tuple)):
        return analysis[0] if analysis else None
    return analysis


def cost_record(compiled, lowered) -> dict[str, Any]:
    """FLOPs and bytes accessed of one call: the compiled program's cost analysis where the
    backend gives one, else the cost analysis of the unoptimised HLO (``lowered``)."""
    for source, obj in (("compiled", compiled), ("lowered", lowered)):
        try:
            analysis = _first(obj.cost_analysis())
        except Exception:  # some backends raise instead of returning nothing
            analysis = None
        if analysis and analysis.get("flops"):
            return {
                "source": source,
                "flops": float(analysis["flops"]),
                "bytes_accessed": float(analysis.get("bytes accessed", 0.0)) or None,
            }
    return {"source": None, "flops": None, "bytes_accessed": None}


def fit_batches(totals: dict[int, int]) -> tuple[float, float]:
    """``(fixed, per_run)`` bytes of the line through the smallest and largest batch measured.

    Args:
        totals: batch size to total bytes (at least two sizes).
    """
    (b1, m1), (b2, m2) = min(totals.items()), max(totals.items())
    per_run = (m2 - m1) / (b2 - b1)
    return m1 - per_run * b1, per_run


def largest_batch(fixed: float, per_run: float, capacity: float) -> int:
    """The largest batch whose ``fixed + batch * per_run`` bytes fit ``capacity`` (0 if none)."""
    return max(0, int((capacity - fixed) // per_run))


def vgg19_params():
    """Random VGG-19 parameters at the real widths (values do not matter for compiling)."""
    return vgg.init_params(jax.random.key(0), channels=VGG19_CHANNELS)


_NOT_LAUNCHES = (
    "parameter", "constant", "tuple", "get-tuple-element", "bitcast", "copy-start", "copy-done",
    "opt-barrier", "after-all", "partition-id", "replica-id",
)  # fmt: skip


def kernel_launches(compiled) -> int | None:
    """Operations in the optimised entry computation that launch work on the device (fusions,
    library calls, copies): a proxy for the kernels one step launches on a GPU.

    Instructions that only name or reshape buffers (parameters, tuples, bitcasts) are not
    counted; loops (``while``) count once, not per iteration.
    """
    try:
        text = compiled.as_text()
    except Exception:
        return None
    entry = text[text.find("\nENTRY") :]
    entry = entry[: entry.find("\n}")]
    count = 0
    for line in entry.splitlines()[1:]:
        if " = " not in line:
            continue
        op = re.search(r"\s([a-z][\w-]*)\(", " " + line.split(" = ", 1)[1])  # after the type
        if op and op.group(1) not in _NOT_LAUNCHES:
            count += 1
    return count
