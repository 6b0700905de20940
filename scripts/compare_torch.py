"""Same-run comparison of nstjax with a straightforward PyTorch implementation of the same objective.

    NSTJAX_WEIGHTS=../shared/weights/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 \
        python scripts/compare_torch.py --output bench-out/compare_torch.json

The PyTorch reference is what a person would write from the paper and nstjax's documented
normalisation: the same Caffe VGG-19 weights (read from the h5 with :func:`nstjax.weights.read_h5`),
RGB -> BGR, x255, minus the ImageNet mean, the network cut at the deepest loss layer (conv5_1), max
pooling, content MSE at conv4_2, normalised Gram (``F^T F / (h w C)``) MSE at conv1_1 ... conv5_1
with weights 1/5, the squared TV mean of :mod:`nstjax.losses`, and ``torch.optim.Adam`` with the same
learning rate in 0-255 pixel units, or ``torch.optim.LBFGS(lr=1, max_iter=1, history_size=H,
line_search_fn=None)`` called once per step.

Timing: for each case (size x batch) and optimiser, blocks of ``--iterations`` steps are timed
alternately (torch, nstjax, torch, nstjax, ...) so that both see the same machine load. The PyTorch
side runs in a child process, driven step block by step block over a pipe and timed inside the
child: in one process, nstjax's oneDNN (with its own OpenMP runtime) slowed PyTorch's convolutions
by 15-25% (measured), which would flatter nstjax. Both sides
first run the same warm-up steps (nstjax's compile is timed separately). nstjax runs the whole batch
in one compiled step; torch loops over the images, one optimiser each. Reported per
image-iteration: the median block time of each side and the ratio ``nstjax speed / torch speed``
(the median of the per-round ratios; also the ratio of the medians and of the best blocks). The
load average is recorded per round; on a busy machine PyTorch slows down far more than XLA.

Check: both sides start from the same images and have run the same number of steps when the timing
ends; their final losses (each evaluated by its own implementation) must agree within
``--loss-rtol``. The step-0 losses must agree closely (same objective).

torch is imported here only (``pip install nstjax[torch]``); nstjax's own imports never need it.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_CASES = ("128x1", "256x1", "128x8")
IMAGES = Path(__file__).resolve().parents[2] / "shared" / "images"


def parse_case(text: str) -> tuple[int, int]:
    """``"128x8"`` -> ``(128, 8)`` (size in pixels, batch)."""
    size, _, batch = text.partition("x")
    return int(size), int(batch or 1)


# ----------------------------------------------------------------------------- torch reference


def torch_reference(arrays: dict, last_layer: str, preprocess: dict, device: str = "cpu"):
    """The PyTorch objective's pieces, built from the h5 arrays (HWIO kernels).

    Returns a ``features(pixels) -> {layer: [N, C, h, w]}`` function for NCHW RGB images in 0-255
    units, computing conv1_1 ... ``last_layer`` with ReLU and 2x2 max pooling between blocks, on
    ``device`` (``"cpu"`` or ``"cuda"``).
    """
    import torch
    import torch.nn.functional as F

    from nstjax.architecture import BLOCKS, LAYER_INDEX

    stop = LAYER_INDEX[last_layer]
    convs = []
    for block, (count, _) in enumerate(BLOCKS, start=1):
        for i in range(1, count + 1):
            name = f"conv{block}_{i}"
            if LAYER_INDEX[name] > stop:
                break
            kernel = torch.from_numpy(
                np.ascontiguousarray(arrays[f"{name}/kernel"].transpose(3, 2, 0, 1))
            ).to(device)
            bias = torch.from_numpy(arrays[f"{name}/bias"]).to(device)
            convs.append((block, name, kernel, bias))
    order = {"BGR": [2, 1, 0], "RGB": [0, 1, 2]}[preprocess["channel_order"]]
    scale = preprocess["scale"] / 255.0
    mean = torch.tensor(preprocess["mean_rgb"], dtype=torch.float32, device=device)
    std = torch.tensor(preprocess["std_rgb"], dtype=torch.float32, device=device)
    mean, std = mean[order].view(1, 3, 1, 1), std[order].view(1, 3, 1, 1)

    def features(pixels):
        x = (pixels[:, order] * scale - mean) / std
        out, current = {}, 1
        for block, name, kernel, bias in convs:
            if block != current:
                x = F.max_pool2d(x, 2, 2)
                current = block
            x = out[name] = F.relu(F.conv2d(x, kernel, bias, padding=1))
        return out

    return features


class TorchRun:
    """One generated image optimised by PyTorch: the reference for one run."""

    def __init__(self, features, content, style, run, optimizer: str, history: int, device="cpu"):
        import torch

        from nstjax.architecture import LAYER_NAMES

        self.torch = torch
        self.features = features
        self.run = run
        cw = dict(zip(LAYER_NAMES, _weights(run.content_layers)))
        sw = dict(zip(LAYER_NAMES, _weights(run.style_layers)))
        self.content_layers = {n: w for n, w in cw.items() if w > 0}
        self.style_layers = {n: w for n, w in sw.items() if w > 0}
        with torch.no_grad():
            self.content_targets = {
                n: f
                for n, f in features(_nchw(content, device)).items()
                if n in self.content_layers
            }
            self.style_targets = {
                n: self.gram(f)
                for n, f in features(_nchw(style, device)).items()
                if n in self.style_layers
            }
        self.pixels = _nchw(content, device).clone().requires_grad_(True)
        if optimizer == "adam":
            self.opt = torch.optim.Adam([self.pixels], lr=run.learning_rate)
        else:
            self.opt = torch.optim.LBFGS(
                [self.pixels], lr=1.0, max_iter=1, history_size=history, line_search_fn=None
            )
        self.steps = 0

    @staticmethod
    def gram(f):
        _, c, h, w = f.shape
        f = f.reshape(c, h * w)
        return f @ f.t() / (h * w * c)

    def loss(self, pixels):
        feats = self.features(pixels)
        content = sum(
            w * ((feats[n] - self.content_targets[n]) ** 2).mean()
            for n, w in self.content_layers.items()
        )
        style = sum(
            w * ((self.gram(feats[n]) - self.style_targets[n]) ** 2).mean()
            for n, w in self.style_layers.items()
        )
        _, _, h, w = pixels.shape
        dy = pixels[:, :, 1:, :] - pixels[:, :, :-1, :]
        dx = pixels[:, :, :, 1:] - pixels[:, :, :, :-1]
        tv = ((dy * dy).sum() + (dx * dx).sum()) / (h * w)
        run = self.run
        return run.content_weight * content + run.style_weight * style + run.tv_weight * tv

    def step(self) -> float:
        def closure():
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.pixels)
            loss.backward()
            return loss

        loss = self.opt.step(closure)
        self.steps += 1
        return float(loss.detach())

    def evaluate(self) -> float:
        with self.torch.no_grad():
            return float(self.loss(self.pixels))


def _nchw(image: np.ndarray, device: str = "cpu"):
    import torch

    pixels = np.ascontiguousarray(image.transpose(2, 0, 1)[None] * 255.0)
    return torch.from_numpy(pixels).to(device)


def _weights(layers) -> np.ndarray:
    from nstjax.api import layer_weight_vector

    return layer_weight_vector(layers, "layers")


class TorchWorker:
    """The PyTorch runs of one case in a child process (spawned: nothing shared with nstjax)."""

    def __init__(self, h5, preprocess, contents, style, run, optimizer, history, threads, device):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_torch_worker,
            args=(child, h5, preprocess, contents, style, run, optimizer, history, threads, device),
            daemon=True,
        )
        self.process.start()
        child.close()

    def _ask(self, *message):
        self.conn.send(message)
        kind, value = self.conn.recv()
        if kind == "error":
            raise RuntimeError(f"PyTorch worker: {value}")
        return value

    def block(self, n: int) -> float:
        """Runs ``n`` steps of every run; returns the seconds it took (timed in the child)."""
        return self._ask("block", n)

    def evaluate(self) -> list[float]:
        return self._ask("evaluate")

    def steps(self) -> list[int]:
        return self._ask("steps")

    def close(self) -> None:
        self.conn.send(("close",))
        self.process.join(timeout=60)


def _torch_worker(conn, h5, preprocess, contents, style, run, optimizer, history, threads, device):
    try:
        import torch

        from nstjax import weights

        torch.set_num_threads(threads)
        features = torch_reference(weights.read_h5(h5), "conv5_1", preprocess, device)
        runs = [TorchRun(features, c, style, run, optimizer, history, device) for c in contents]
    except Exception as e:  # reported to the parent
        conn.recv()
        conn.send(("error", repr(e)))
        return
    while True:
        message = conn.recv()
        try:
            if message[0] == "close":
                return
            if message[0] == "block":
                start = time.perf_counter()
                for r in runs:
                    for _ in range(message[1]):
                        r.step()
                if device != "cpu":
                    torch.cuda.synchronize()
                conn.send(("ok", time.perf_counter() - start))
            elif message[0] == "evaluate":
                conn.send(("ok", [r.evaluate() for r in runs]))
            elif message[0] == "steps":
                conn.send(("ok", [r.steps for r in runs]))
        except Exception as e:
            conn.send(("error", repr(e)))


# ----------------------------------------------------------------------------- nstjax side


class NstjaxBatch:
    """A batch of runs optimised by nstjax's compiled step from a Python loop (CPU's form)."""

    def __init__(self, params, contents, style, run, optimizer: str, history: int, batch: int):
        import jax

        from nstjax import engine
        from nstjax.bench.problem import make_problem

        self.jax, self.engine = jax, engine
        self.params = params
        self.program = engine.Program(optimizer=optimizer, lbfgs_history=history)
        size = contents[0].shape[0]
        self.problem = make_problem(
            params, self.program, batch, size, contents=contents, style=style, run=run
        )
        self.state = engine.init_state(self.program, self.problem.pixels)
        start = time.perf_counter()
        self.compiled = engine.train_step.lower(
            params, self.state, self.problem.hyper, self.problem.targets, program=self.program
        ).compile()
        self.compile_s = time.perf_counter() - start
        self.first_loss = None

    def steps(self, n: int) -> None:
        state = self.state
        for _ in range(n):
            state, metrics = self.compiled(
                self.params, state, self.problem.hyper, self.problem.targets
            )
            if self.first_loss is None:
                self.first_loss = np.asarray(metrics[:, 0])
        self.state = self.jax.block_until_ready(state)

    @property
    def step_count(self) -> int:
        return int(self.state.step)

    def evaluate(self) -> np.ndarray:
        metrics = self.engine.evaluate(
            self.params,
            self.state.pixels,
            self.problem.hyper,
            self.problem.targets,
            program=self.program,
        )
        return np.asarray(metrics[:, 0])


# ----------------------------------------------------------------------------- the comparison


def load_images(size: int, count: int, content_dir: Path, style_path: Path | None):
    """``count`` square content images (cycling over the folder) and one style image."""
    from nstjax.image import list_images, load_image, resize

    files = list_images([str(content_dir)]) if content_dir.is_dir() else []
    if not files:
        from nstjax.bench.problem import pattern

        return [pattern(size, size, seed=1 + i) for i in range(count)], pattern(size, size, 100)
    style_file = style_path or next((f for f in files if "wave" in str(f)), files[-1])
    content_files = [f for f in files if f != style_file] or files
    contents = [
        resize(load_image(content_files[i % len(content_files)]), (size, size))
        for i in range(count)
    ]
    return contents, resize(load_image(style_file), (size, size))


def compare_case(args, params, h5, meta, size: int, batch: int, optimizer: str) -> dict:
    """Times one case alternately and checks the losses; returns its record."""
    from nstjax.api import Run

    run = Run(learning_rate=args.lr if optimizer == "adam" else 1.0)
    contents, style = load_images(size, batch, args.images, args.style)
    torch_side = TorchWorker(
        h5, meta["preprocess"], contents, style, run, optimizer, args.lbfgs_history, args.threads,
        getattr(args, "device", "cpu"),
    )  # fmt: skip
    try:
        return _compare(args, params, torch_side, contents, style, run, batch, optimizer, size)
    finally:
        torch_side.close()


def _compare(args, params, torch_side, contents, style, run, batch, optimizer, size) -> dict:
    jax_batch = NstjaxBatch(params, contents, style, run, optimizer, args.lbfgs_history, batch)
    step0_torch = torch_side.evaluate()
    torch_side.block(args.warmup)
    jax_batch.steps(args.warmup)
    torch_times, jax_times, loads = [], [], []
    for _ in range(args.rounds):
        loads.append(os.getloadavg()[0])
        torch_times.append(torch_side.block(args.iterations) / (args.iterations * batch))
        before = jax_batch.step_count
        start = time.perf_counter()
        jax_batch.steps(args.iterations)
        jax_times.append((time.perf_counter() - start) / (args.iterations * batch))
        if jax_batch.step_count - before != args.iterations:
            raise RuntimeError(
                f"nstjax ran {jax_batch.step_count - before} steps, expected {args.iterations}"
            )
    steps = args.warmup + args.rounds * args.iterations
    assert all(n == steps for n in torch_side.steps()) and jax_batch.step_count == steps
    final_torch = np.array(torch_side.evaluate())
    final_jax = jax_batch.evaluate()
    step0_rel = np.abs(jax_batch.first_loss - np.array(step0_torch)) / np.array(step0_torch)
    final_rel = np.abs(final_jax - final_torch) / final_torch
    ratios = [t / j for t, j in zip(torch_times, jax_times)]
    record = {
        "size": size,
        "batch": batch,
        "optimizer": optimizer,
        "iterations_per_block": args.iterations,
        "rounds": args.rounds,
        "steps_total": steps,
        "torch_s_per_image_iteration": statistics.median(torch_times),
        "nstjax_s_per_image_iteration": statistics.median(jax_times),
        "torch_block_times": torch_times,
        "nstjax_block_times": jax_times,
        "ratio_median_of_rounds": statistics.median(ratios),
        "ratio_of_medians": statistics.median(torch_times) / statistics.median(jax_times),
        "ratio_of_best": min(torch_times) / min(jax_times),
        "load_average_per_round": loads,
        "nstjax_compile_s": jax_batch.compile_s,
        "step0_loss_torch": step0_torch,
        "step0_loss_nstjax": jax_batch.first_loss.tolist(),
        "step0_rel_diff_max": float(step0_rel.max()),
        "final_loss_torch": final_torch.tolist(),
        "final_loss_nstjax": final_jax.tolist(),
        "final_rel_diff_max": float(final_rel.max()),
        "losses_agree": bool(final_rel.max() <= args.loss_rtol and step0_rel.max() <= 1e-3),
    }
    return record


def machine(threads: int) -> dict:
    """What the figures were measured on: nstjax's bench record plus the PyTorch side."""
    import torch

    from nstjax.bench.report import machine_info

    info = machine_info()
    return {
        **info,
        "torch": torch.__version__,
        "torch_threads": threads,
        "torch_process": "separate (spawned child)",
        "load_average_at_start": info["load_average"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), help="SIZExBATCH")
    parser.add_argument("--optimizers", nargs="+", default=["adam", "lbfgs"])
    parser.add_argument("--iterations", type=int, default=5, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=5, help="alternating blocks per side")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps on each side")
    parser.add_argument("--lr", type=float, default=4.0, help="Adam step in 0-255 pixel units")
    parser.add_argument("--lbfgs-history", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument("--loss-rtol", type=float, default=0.03)
    parser.add_argument("--device", default="cpu", help="the PyTorch side's device (cpu, cuda)")
    parser.add_argument("--images", type=Path, default=IMAGES, help="folder of content images")
    parser.add_argument("--style", type=Path, default=None, help="style image")
    parser.add_argument("--weights", default=None, help="the VGG-19 .h5 (default $NSTJAX_WEIGHTS)")
    parser.add_argument("--output", type=Path, default=Path("compare_torch.json"))
    parser.add_argument(
        "--convolution",
        choices=("xla", "flipped", "onednn"),
        default=None,
        help="nstjax's convolution (default: vgg.default_convolution())",
    )
    args = parser.parse_args(argv)

    from nstjax import vgg, weights

    h5 = args.weights or os.environ.get(weights.ENV_WEIGHTS)
    if not h5 or not str(h5).endswith(".h5"):
        parser.error("pass --weights PATH.h5 or set NSTJAX_WEIGHTS to the .h5 file")
    meta = {"preprocess": weights.CAFFE_PREPROCESS}
    params = vgg.prepare(vgg.load_params(h5), args.convolution)
    convolution = vgg.convolution_of(params)
    print(f"nstjax convolution: {args.convolution or 'default'} ({convolution})")
    records = []
    info = machine(args.threads)
    print(f"{info['cpu']}, {info['cpu_count']} cores, load {info['load_average_at_start']}")
    if info["load_average_at_start"][0] > 0.5 * (os.cpu_count() or 1):
        print(
            "warning: the machine is busy; PyTorch's OpenMP threads slow down far more than XLA's "
            "under contention, so ratios measured now flatter nstjax",
            file=sys.stderr,
        )
    for case in args.cases:
        size, batch = parse_case(case)
        for optimizer in args.optimizers:
            rec = compare_case(args, params, h5, meta, size, batch, optimizer)
            records.append(rec)
            print(
                f"{size:4d} px batch {batch:2d} {optimizer:5s}: "
                f"torch {rec['torch_s_per_image_iteration'] * 1e3:7.1f} ms/img-it, "
                f"nstjax {rec['nstjax_s_per_image_iteration'] * 1e3:7.1f} ms/img-it, "
                f"ratio {rec['ratio_median_of_rounds']:.2f}x "
                f"(of medians {rec['ratio_of_medians']:.2f}x, of best {rec['ratio_of_best']:.2f}x); "
                f"final loss rel diff {rec['final_rel_diff_max']:.2%} "
                f"(step 0 {rec['step0_rel_diff_max']:.1e}) "
                f"{'ok' if rec['losses_agree'] else 'DISAGREE'}",
                flush=True,
            )
    info["load_average_at_end"] = list(os.getloadavg())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(
            {
                "machine": info,
                "convolution": convolution,
                "args": {k: str(v) for k, v in vars(args).items()},
                "results": records,
            },
            indent=2,
        )
    )
    print(f"wrote {args.output}")
    return 0 if all(r["losses_agree"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
