"""The PyTorch side of the time-to-quality benchmark: neural-style's default recipe, in its own
process, with snapshots of its image at given iterations.

The objective and optimiser are :class:`nstjax.bench.torch_reference.TorchRun`'s (the same Caffe
VGG-19 weights read from the ``.h5``); the run starts from the image the parent gives (the
recipe's initialisation) instead of the content image. As in :class:`TorchWorker`, the child is
spawned, so nothing of JAX's or oneDNN's runtime is shared, and it times itself.
"""

import multiprocessing
import time
from collections.abc import Sequence

import numpy as np

from nstjax.run import Run

CHILD_TIMEOUT_S = 4 * 3600.0
"""How long the parent waits for the child's snapshots (neural-style's 512 px run takes about
half an hour on a 2-core CPU)."""


def run_torch_recipe(
    h5: str,
    preprocess: dict,
    images: dict,
    run: Run,
    history: int,
    checkpoints: Sequence[int],
    threads: int,
    device: str = "cpu",
) -> list[dict]:
    """Runs the recipe in a spawned child and returns its snapshots.

    Args:
        h5: the VGG-19 ``.h5`` file.
        preprocess: its input convention (:data:`nstjax.weights.CAFFE_PREPROCESS`).
        images: ``{"content", "style", "init"}`` ``[H, W, 3]`` in [0, 1] (content and init at
            the output size, the style as the run sees it).
        run: the weights and layers (neural-style's, :func:`nstjax.presets.neural_style`).
        history: L-BFGS curvature pairs.
        checkpoints: growing iteration counts at which the image is kept; the last is the total.
        threads: ``torch.set_num_threads``.
        device: torch's device (``"cuda"`` synchronises before each snapshot's time is read).

    Returns:
        ``[{"step", "seconds", "image"}]``, ``seconds`` from the start of the target computation
        (the child's own clock, model loading excluded), ``image`` ``[H, W, 3]`` in [0, 1].
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    args = (child, h5, preprocess, images, run, history, list(checkpoints), threads, device)
    process = ctx.Process(target=_child, args=args, daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(CHILD_TIMEOUT_S):
            raise RuntimeError(f"PyTorch child: no answer in {CHILD_TIMEOUT_S:.0f} s")
        kind, value = parent.recv()
    finally:
        process.join(timeout=60)
        if process.is_alive():
            process.kill()
    if kind == "error":
        raise RuntimeError(f"PyTorch child: {value}")
    return value


def _child(conn, h5, preprocess, images, run, history, checkpoints, threads, device):
    try:
        snapshots = _snapshots(h5, preprocess, images, run, history, checkpoints, threads, device)
        conn.send(("ok", snapshots))
    except Exception as e:  # reported to the parent as one line
        conn.send(("error", repr(e)))


def _snapshots(h5, preprocess, images, run, history, checkpoints, threads, device) -> list[dict]:
    import torch

    from nstjax import weight_files
    from nstjax.bench.torch_reference import TorchRun, to_nchw, torch_reference

    torch.set_num_threads(threads)
    features = torch_reference(weight_files.read_h5(h5), "conv5_1", preprocess, device)
    start = time.perf_counter()
    content, style = images["content"], images["style"]
    reference = TorchRun(features, content, style, run, "lbfgs", history, device)
    reference.pixels = to_nchw(images["init"], device).clone().requires_grad_(True)
    reference.opt = torch.optim.LBFGS(
        [reference.pixels], lr=1.0, max_iter=1, history_size=history, line_search_fn=None
    )
    kept, done = [], 0
    for target in checkpoints:
        while done < target:
            reference.step()
            done += 1
        if device != "cpu":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        pixels = reference.pixels.detach()[0].permute(1, 2, 0).cpu().numpy() / 255.0
        kept.append({"step": done, "seconds": seconds, "image": np.clip(pixels, 0.0, 1.0)})
    return kept
