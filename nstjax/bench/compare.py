"""nstjax against the PyTorch reference (:mod:`nstjax.bench.torch_reference`), timed in one run.

For each case (size x batch) and optimiser, blocks of ``iterations`` steps are timed alternately
(torch, nstjax, torch, nstjax, ...) so that both see the same machine load. The PyTorch side runs
in a child process (:class:`~nstjax.bench.torch_reference.TorchWorker`), driven block by block
over a pipe and timed inside the child. Both sides first run the same warm-up steps (nstjax's
compile is timed separately). nstjax runs the whole batch in one compiled step; torch loops over
the images, one optimiser each. Reported per image-iteration: the median block time of each side
and the ratio ``nstjax speed / torch speed`` (the median of the per-round ratios; also the ratio of
the medians and of the best blocks), with the load average of every round.

Check: both sides start from the same images and have run the same number of steps when the timing
ends; their final losses (each evaluated by its own implementation) must agree within
``loss_rtol``, their step-0 losses within 1e-3 (the same objective).
"""

import dataclasses
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nstjax import engine
from nstjax.batch.build import Built, build
from nstjax.batch.plan import program_for
from nstjax.optim import LBFGS_HISTORY
from nstjax.run import Options, Run

STEP0_RTOL = 1e-3
"""How closely the two sides' step-0 losses must agree (the same objective, float32)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """How a comparison is run (the script's options).

    Attributes:
        iterations: steps per timed block.
        rounds: alternating blocks per side.
        warmup: untimed steps on each side before the first block.
        lr: Adam's step in 0-255 pixel units (L-BFGS takes its default, 1).
        lbfgs_history: L-BFGS curvature pairs, both sides.
        threads: PyTorch's threads.
        loss_rtol: how closely the final losses must agree.
        images: folder of content images (:func:`load_images`; ``None``: its default).
        style: the style image (``None``: one from ``images``).
        device: the PyTorch side's device (``"cpu"``, or ``"cuda"`` on a GPU machine).
    """

    iterations: int = 5
    rounds: int = 5
    warmup: int = 2
    lr: float = 4.0
    lbfgs_history: int = LBFGS_HISTORY
    threads: int = os.cpu_count() or 1
    loss_rtol: float = 0.03
    images: Path | None = None
    style: Path | None = None
    device: str = "cpu"


def parse_case(text: str) -> tuple[int, int]:
    """``"128x8"`` -> ``(128, 8)`` (size in pixels, batch).

    Raises:
        NstjaxError: not ``SIZE`` or ``SIZExBATCH`` with positive integers.
    """
    from nstjax.errors import NstjaxError

    size, _, batch = text.partition("x")
    try:
        case = int(size), int(batch or 1)
    except ValueError:
        case = (0, 0)
    if min(case) < 1:
        raise NstjaxError(f"--cases {text!r}: expected SIZE or SIZExBATCH, e.g. 128x8")
    return case


def default_images() -> Path:
    """The example images that ship with nstjax (:mod:`nstjax.examples`); a comparison's
    ``images`` field names another folder."""
    from nstjax import examples

    return examples.FOLDER


def load_images(
    size: int, count: int, folder: Path | None = None, style_path: Path | None = None
) -> tuple[list[np.ndarray], np.ndarray]:
    """``count`` square content images and one style image, ``size`` pixels, in [0, 1].

    Args:
        size: side in pixels.
        count: content images, cycling over the folder's images other than the style.
        folder: the images (default :func:`default_images`).
        style_path: the style image (default: the folder's first one named ``*wave*``, else its
            last one).
    """
    from nstjax.image import list_images, load_image
    from nstjax.resample import resize

    folder = default_images() if folder is None else folder
    files = list_images([str(folder)]) if folder.is_dir() else []
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


def batch_arrays(
    params,
    convolution: str,
    contents: Sequence[np.ndarray],
    style: np.ndarray,
    run: Run,
    options: Options,
) -> tuple[engine.Program, Built]:
    """The program and the engine's arrays for one run per content image, all with ``style``.

    Args:
        params: VGG parameters prepared for ``convolution`` (:func:`nstjax.vgg.prepare`).
        convolution: the kernels (:data:`nstjax.kernels.CONVOLUTIONS`).
        contents: one content image per run (each also its initial image).
        style: the style image.
        run: the runs' weights, layers and learning rate.
        options: the static options (optimizer, L-BFGS history, dtype, ...).
    """
    runs = [dataclasses.replace(run, content=i, style=0) for i in range(len(contents))]
    program = program_for(runs, options, convolution)
    return program, build(params, program, runs, list(contents), [style])


class NstjaxBatch:
    """A batch of runs optimised by nstjax's compiled step, block by block (CPU's loop).

    Args: as :func:`batch_arrays`.
    """

    def __init__(
        self,
        params,
        convolution: str,
        contents: Sequence[np.ndarray],
        style: np.ndarray,
        run: Run,
        options: Options,
    ):
        self.params = params
        self.program, built = batch_arrays(params, convolution, contents, style, run, options)
        self.hyper, self.targets = built.hyper, built.targets
        self.state = engine.init_state(self.program, jnp.asarray(built.pixels))
        start = time.perf_counter()
        self.compiled = engine.train_step.lower(
            params, self.state, self.hyper, self.targets, program=self.program
        ).compile()
        self.compile_s = time.perf_counter() - start
        self.first_loss: np.ndarray | None = None

    def steps(self, n: int) -> None:
        """Runs ``n`` steps with the engine's own loop (:func:`nstjax.engine.advance`, the
        ``"python"`` form over this batch's compiled step) and waits for them."""
        runner = engine.Loop(self.compiled)
        state, rows = engine.advance(runner, self.params, self.state, self.hyper, self.targets, n)
        if self.first_loss is None:
            self.first_loss = np.asarray(rows[0, :, 0])
        self.state = jax.block_until_ready(state)

    @property
    def step_count(self) -> int:
        """Steps run so far."""
        return int(self.state.step)

    def evaluate(self) -> np.ndarray:
        """``[R]`` total losses of the current images."""
        metrics = engine.evaluate(
            self.params, self.state.pixels, self.hyper, self.targets, program=self.program
        )
        return np.asarray(metrics[:, 0])


def compare_case(
    settings: Settings, params, convolution: str, h5: str, size: int, batch: int, optimizer: str
) -> dict:
    """Times one case alternately and checks the losses.

    Args:
        settings: how to run it.
        params: nstjax's VGG parameters, prepared for ``convolution``.
        convolution: nstjax's kernels.
        h5: the VGG-19 ``.h5`` the PyTorch side reads (the same weights as ``params``).
        size: image side, pixels.
        batch: runs (images) optimised together.
        optimizer: ``"adam"`` or ``"lbfgs"``.

    Returns:
        The case's record (times, ratios, loads, losses, ``losses_agree``).
    """
    from nstjax import weights
    from nstjax.bench.torch_reference import TorchWorker

    run = Run(learning_rate=settings.lr if optimizer == "adam" else None)
    options = Options(optimizer=optimizer, lbfgs_history=settings.lbfgs_history)
    contents, style = load_images(size, batch, settings.images, settings.style)
    torch_side = TorchWorker(
        h5,
        weights.CAFFE_PREPROCESS,
        contents,
        style,
        run,
        optimizer,
        settings.lbfgs_history,
        settings.threads,
        settings.device,
    )
    try:
        jax_side = NstjaxBatch(params, convolution, contents, style, run, options)
        return _timed_rounds(settings, torch_side, jax_side, size, batch, optimizer)
    finally:
        torch_side.close()


def _timed_rounds(settings: Settings, torch_side, jax_side: NstjaxBatch, size, batch, optimizer):
    s = settings
    step0_torch = np.array(torch_side.evaluate())
    torch_side.block(s.warmup)
    jax_side.steps(s.warmup)
    torch_times, jax_times, loads = [], [], []
    for _ in range(s.rounds):
        loads.append(os.getloadavg()[0])
        torch_times.append(torch_side.block(s.iterations) / (s.iterations * batch))
        before = jax_side.step_count
        start = time.perf_counter()
        jax_side.steps(s.iterations)
        jax_times.append((time.perf_counter() - start) / (s.iterations * batch))
        if jax_side.step_count - before != s.iterations:
            raise RuntimeError(
                f"nstjax ran {jax_side.step_count - before} steps, expected {s.iterations}"
            )
    steps = s.warmup + s.rounds * s.iterations
    if any(n != steps for n in torch_side.steps()) or jax_side.step_count != steps:
        raise RuntimeError(f"the two sides did not both run {steps} steps")
    final_torch = np.array(torch_side.evaluate())
    final_jax = jax_side.evaluate()
    step0_rel = np.abs(jax_side.first_loss - step0_torch) / step0_torch
    final_rel = np.abs(final_jax - final_torch) / final_torch
    ratios = [t / j for t, j in zip(torch_times, jax_times)]
    return {
        "size": size,
        "batch": batch,
        "optimizer": optimizer,
        "iterations_per_block": s.iterations,
        "rounds": s.rounds,
        "steps_total": steps,
        "torch_s_per_image_iteration": statistics.median(torch_times),
        "nstjax_s_per_image_iteration": statistics.median(jax_times),
        "torch_block_times": torch_times,
        "nstjax_block_times": jax_times,
        "ratio_median_of_rounds": statistics.median(ratios),
        "ratio_of_medians": statistics.median(torch_times) / statistics.median(jax_times),
        "ratio_of_best": min(torch_times) / min(jax_times),
        "load_average_per_round": loads,
        "nstjax_compile_s": jax_side.compile_s,
        "step0_loss_torch": step0_torch.tolist(),
        "step0_loss_nstjax": jax_side.first_loss.tolist(),
        "step0_rel_diff_max": float(step0_rel.max()),
        "final_loss_torch": final_torch.tolist(),
        "final_loss_nstjax": final_jax.tolist(),
        "final_rel_diff_max": float(final_rel.max()),
        "losses_agree": bool(final_rel.max() <= s.loss_rtol and step0_rel.max() <= STEP0_RTOL),
    }


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
