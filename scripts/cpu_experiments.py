"""What would make nstjax faster on XLA:CPU: variants of the step timed alternately, in one run.

    NSTJAX_WEIGHTS=../shared/weights/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 \
        python scripts/cpu_experiments.py --size 128 --batch 1 \
        --variants torch engine engine+vjp engine+ynn scan \
        --output bench-out/cpu_experiments_128x1.json

Each variant runs in its own worker process (XLA flags are read once per process, so flags can
only be compared across processes); the parent sends "run N" to one worker at a time, round after
round, so every variant sees the same machine load, and reports the median time per
image-iteration of each and its speed relative to the first variant (the median of the per-round
ratios). Workers idle, blocked on a pipe, while another one runs. Every variant starts from the
same images and runs the same number of Adam steps; its final loss is printed so that a variant
that changed the maths shows itself.

Variants (``--variants``) are a base, optionally followed by ``+modifier``s, e.g.
``engine+vjp+bf16``:

- ``torch``: the PyTorch reference, :mod:`nstjax.bench.torch_reference` (looping over the batch).
- ``engine``: ``nstjax.engine.train_step`` from a Python loop (the CPU default), XLA's
  convolutions (``Program(convolution="xla")``, unprepared params).
- ``scan``: ``nstjax.engine.train_chunk`` (``lax.scan`` over N steps in one call).
- ``lax``: the same objective written directly with ``lax.conv`` (NHWC), batched natively (no
  vmap, no Flax; :mod:`nstjax.bench.lax_reference`), Adam by hand, the kernels closed over as
  constants.

Modifiers:

- ``onednn``: ``--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true``.
- ``noynn``: ``--xla_cpu_experimental_ynn_fusion_type=`` (XLA's own convolutions instead of
  YNNPACK's). ``nstjax.xla_flags`` now sets this flag on import, so ``engine`` already has it;
  the modifier stays for the figures measured before that change.
- ``ynn``: ``NSTJAX_XLA_DEFAULTS=0``, i.e. YNNPACK fusions back on (XLA:CPU's own default).
- ``ynndot``: ``--xla_cpu_experimental_ynn_fusion_type=individual_dot``: YNNPACK for matrix
  products only (its bf16 matmul uses the CPU's AMX units), XLA's own convolutions.
- ``const`` (engine): the VGG parameters closed over as compile-time constants, so XLA folds the
  per-step reversal and transposition of every kernel for the input gradients.
- ``args`` (lax): the kernels passed as arguments instead of constants.
- ``vjp`` (engine, scan; lax, where it implies ``args``): a ``custom_vjp`` convolution whose input
  gradient is a plain convolution with a flipped, transposed copy of the kernel prepared once
  outside the step (for the engine: ``Program(convolution="flipped")`` with
  ``vgg.prepare(params, "flipped")``, the library's version of what this script first measured
  with its own copy).
- ``nchw`` (lax): NCHW activations instead of NHWC.
- ``bf16`` (engine, scan): ``Program(dtype="bfloat16")`` (bf16 activations; not the same numbers).

The ``poolreshape`` modifier of the earlier figures (2x2 max pooling as a reshape and a max, whose
gradient is elementwise, instead of ``reduce_window``, whose gradient is a select-and-scatter) is
gone: ``nstjax.vgg`` pools that way itself since the change it measured, so ``engine`` is what
``engine+poolreshape`` was.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ENV_FLAGS = {
    "onednn": "--xla_cpu_use_onednn=true --xla_cpu_experimental_onednn_custom_call=true",
    "noynn": "--xla_cpu_experimental_ynn_fusion_type=",
    "ynndot": "--xla_cpu_experimental_ynn_fusion_type=individual_dot",
}
BASES = ("torch", "engine", "scan", "lax")
MODIFIERS = (
    "onednn",
    "noynn",
    "ynn",
    "ynndot",
    "const",
    "args",
    "vjp",
    "nchw",
    "bf16",
)


def parse_variant(text: str) -> tuple[str, set[str]]:
    """``"engine+const+noynn"`` -> ``("engine", {"const", "noynn"})``."""
    base, *mods = text.split("+")
    if base not in BASES or any(m not in MODIFIERS for m in mods):
        raise argparse.ArgumentTypeError(
            f"{text!r}: a base of {BASES} with +modifiers of {MODIFIERS}"
        )
    return base, set(mods)


def variant_type(text: str) -> str:
    parse_variant(text)
    return text


# ----------------------------------------------------------------------------- workers


def _images(size: int, batch: int):
    from nstjax.bench.compare import load_images

    return load_images(size, batch)


def torch_worker(args):
    import torch

    from nstjax import weights
    from nstjax.bench.torch_reference import TorchRun, torch_reference
    from nstjax.run import Run

    torch.set_num_threads(args.threads)
    arrays = weights.read_h5(os.environ[weights.ENV_WEIGHTS])
    features = torch_reference(arrays, "conv5_1", weights.CAFFE_PREPROCESS)
    contents, style = _images(args.size, args.batch)
    runs = [TorchRun(features, c, style, Run(), "adam", 20) for c in contents]

    def advance(n):
        for r in runs:
            for _ in range(n):
                r.step()

    def loss():
        return float(np.mean([r.evaluate() for r in runs]))

    return advance, lambda: sum(r.steps for r in runs) // len(runs), loss


def engine_worker(args):
    import jax
    import jax.numpy as jnp

    from nstjax import engine, vgg
    from nstjax.bench.compare import batch_arrays
    from nstjax.run import Options, Run

    base, mods = parse_variant(args.variant)
    convolution = "flipped" if "vjp" in mods else "xla"  # "xla": plain autodiff
    params = vgg.prepare(vgg.load_params(), convolution)
    options = Options(dtype="bfloat16" if "bf16" in mods else "float32")
    contents, style = _images(args.size, args.batch)
    program, built = batch_arrays(params, convolution, contents, style, Run(), options)
    hyper, targets = built.hyper, built.targets
    box = {"state": engine.init_state(program, jnp.asarray(built.pixels))}
    if base == "scan":
        compiled = engine.train_chunk.lower(
            params,
            box["state"],
            hyper,
            targets,
            jnp.int32(args.iterations),
            program=program,
            length=args.iterations,
        ).compile()

        def advance(n):
            assert n == args.iterations, "the scan variant runs whole chunks"
            box["state"], _ = compiled(params, box["state"], hyper, targets, jnp.int32(n))
            jax.block_until_ready(box["state"])

    else:
        if "const" in mods:
            step = jax.jit(
                lambda state, hyper, targets: engine.batched_step(
                    params, program, state, hyper, targets
                ),
                donate_argnums=0,
            )
            compiled = step.lower(box["state"], hyper, targets).compile()
            call = lambda state: compiled(state, hyper, targets)
        else:
            compiled = engine.train_step.lower(
                params, box["state"], hyper, targets, program=program
            ).compile()
            call = lambda state: compiled(params, state, hyper, targets)

        def advance(n):
            state = box["state"]
            for _ in range(n):
                state, _ = call(state)
            box["state"] = jax.block_until_ready(state)

    def loss():
        metrics = engine.evaluate(params, box["state"].pixels, hyper, targets, program=program)
        return float(np.mean(np.asarray(metrics[:, 0])))

    return advance, lambda: int(box["state"].step), loss


def lax_worker(args):
    """The objective written directly in lax (no Flax, no vmap)."""
    import jax
    import jax.numpy as jnp

    from nstjax import weights
    from nstjax.architecture import LAYER_INDEX, LAYERS
    from nstjax.bench import lax_reference
    from nstjax.run import Run

    _, mods = parse_variant(args.variant)
    as_args = "args" in mods or "vjp" in mods
    names = [name for name, _, _ in LAYERS[: LAYER_INDEX["conv5_1"] + 1]]
    convs = lax_reference.convs(weights.read_h5(os.environ[weights.ENV_WEIGHTS]), names)
    features, gram = lax_reference.network(names, nchw="nchw" in mods, use_vjp="vjp" in mods)
    style_layers = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    contents, style = _images(args.size, args.batch)
    content = jnp.asarray(np.stack(contents) * 255.0)
    style_feats = features(jnp.asarray(style[None] * 255.0), convs)
    targets_style = {n: gram(style_feats[n]) for n in style_layers}
    target_content = features(content, convs)["conv4_2"]
    run = Run()
    learning_rate = run.step_size("adam")

    def loss_per_image(x, convs=convs):
        f = features(x, convs)
        axes = (1, 2, 3)
        c = jnp.mean((f["conv4_2"] - target_content) ** 2, axis=axes)
        s = sum(jnp.mean((gram(f[n]) - targets_style[n]) ** 2, axis=(1, 2)) for n in style_layers)
        dy = x[:, 1:] - x[:, :-1]
        dx = x[:, :, 1:] - x[:, :, :-1]
        tv = (jnp.sum(dy * dy, axis=axes) + jnp.sum(dx * dx, axis=axes)) / (x.shape[1] * x.shape[2])
        style = s / len(style_layers)
        return run.content_weight * c + run.style_weight * style + run.tv_weight * tv

    def step_with(convs, x, m, v, t):
        g = jax.grad(lambda x: jnp.sum(loss_per_image(x, convs)))(x)
        t = t + 1
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        mhat = m / (1 - 0.9**t)
        vhat = v / (1 - 0.999**t)
        return x - learning_rate * mhat / (jnp.sqrt(vhat) + 1e-8), m, v, t

    if as_args:
        jitted = jax.jit(step_with, donate_argnums=(1, 2, 3))
        step = lambda *s: jitted(convs, *s)
    else:
        step = jax.jit(lambda *s: step_with(convs, *s), donate_argnums=(0, 1, 2))

    box = {"s": (content, jnp.zeros_like(content), jnp.zeros_like(content), jnp.int32(0))}

    def advance(n):
        s = box["s"]
        for _ in range(n):
            s = step(*s)
        box["s"] = jax.block_until_ready(s)

    def loss():
        return float(jnp.mean(jax.jit(loss_per_image)(box["s"][0])))

    return advance, lambda: int(box["s"][3]), loss


def worker(args) -> None:
    base, _ = parse_variant(args.variant)
    if base == "torch":
        advance, steps, loss = torch_worker(args)
    elif base == "lax":
        advance, steps, loss = lax_worker(args)
    else:
        advance, steps, loss = engine_worker(args)
    start = time.perf_counter()
    advance(args.iterations)  # warm-up: one block (the scan variant runs whole blocks only)
    print(f"ready {time.perf_counter() - start:.3f}", flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "run":
            n = int(rest[0])
            before = steps()
            start = time.perf_counter()
            advance(n)
            elapsed = time.perf_counter() - start
            print(f"time {elapsed:.6f} {steps() - before}", flush=True)
        elif command == "loss":
            print(f"loss {loss():.8e} {steps()}", flush=True)
        elif command == "quit":
            return


# ----------------------------------------------------------------------------- the parent


class Worker:
    """A worker process running one variant, driven over its stdin/stdout."""

    def __init__(self, variant: str, args):
        env = dict(os.environ)
        mods = parse_variant(variant)[1]
        flags = " ".join(ENV_FLAGS[m] for m in sorted(mods) if m in ENV_FLAGS)
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
        if "ynn" in mods:
            env["NSTJAX_XLA_DEFAULTS"] = "0"
        command = [sys.executable, __file__, "--worker", "--variant", variant]
        command += ["--size", str(args.size), "--batch", str(args.batch)]
        command += ["--iterations", str(args.iterations), "--threads", str(args.threads)]
        self.variant = variant
        self.proc = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.warmup_s = None

    def wait_ready(self) -> None:
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"{self.variant}: worker failed to start ({line!r})")
        self.warmup_s = float(line.split()[1])

    def ask(self, command: str) -> list[str]:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().split()


def _time_rounds(workers, args) -> tuple[dict, dict]:
    """Every worker runs a block in turn, round after round; returns the seconds per
    image-iteration of each block and each variant's ``(final loss, steps)``, by variant."""
    times = {w.variant: [] for w in workers}
    for _ in range(args.rounds):
        for w in workers:
            _, elapsed, done = w.ask(f"run {args.iterations}")
            if int(done) != args.iterations:
                raise RuntimeError(f"{w.variant} ran {done} steps, expected {args.iterations}")
            times[w.variant].append(float(elapsed) / (args.iterations * args.batch))
    losses = {}
    for w in workers:
        _, loss, steps = w.ask("loss")
        losses[w.variant] = (float(loss), int(steps))
        w.ask("quit")
        w.proc.wait()
    return times, losses


def _rows(workers, times, losses, base: str) -> list[dict]:
    """One record per variant (printed as it is made)."""
    rows = []
    for w in workers:
        med = statistics.median(times[w.variant])
        paired = statistics.median(b / t for b, t in zip(times[base], times[w.variant]))
        loss, steps = losses[w.variant]
        rows.append(
            {
                "variant": w.variant,
                "s_per_image_iteration": med,
                "speed_vs_first": paired,
                "block_times": times[w.variant],
                "warmup_s": w.warmup_s,
                "final_loss": loss,
                "steps": steps,
            }
        )
        print(
            f"  {w.variant:28s} {med * 1e3:8.1f} ms/img-it   speed vs {base}: {paired:5.2f}x   "
            f"loss after {steps} steps {loss:.4e}"
        )
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=["torch", "engine"], type=variant_type)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=5, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    workers = []
    for variant in args.variants:  # one at a time, so that compiles do not overlap
        w = Worker(variant, args)
        w.wait_ready()
        workers.append(w)
    load_start = os.getloadavg()
    times, losses = _time_rounds(workers, args)
    load_end = os.getloadavg()
    print(
        f"{args.size} px, batch {args.batch}, {args.rounds} rounds x {args.iterations} steps; "
        f"load {load_start[0]:.1f} -> {load_end[0]:.1f}"
    )
    rows = _rows(workers, times, losses, args.variants[0])
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "size": args.size,
            "batch": args.batch,
            "iterations": args.iterations,
            "rounds": args.rounds,
            "first": args.variants[0],
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "load_average": [load_start, load_end],
            "results": rows,
        }
        args.output.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
