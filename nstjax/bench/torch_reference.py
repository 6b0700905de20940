"""A straightforward PyTorch implementation of nstjax's objective: the reference it is timed and
checked against (``scripts/compare_torch.py`` and the tests).

It is what a person would write from the paper and nstjax's documented normalisation: the same
Caffe VGG-19 weights (the h5's arrays, :func:`nstjax.weight_files.read_h5`), RGB -> BGR, x255, minus
the ImageNet mean, the network cut at the deepest loss layer, 2x2 max pooling between blocks,
content MSE, normalised Gram (``F^T F / (h w C)``) MSE per style layer, the squared TV mean of
:mod:`nstjax.losses`, and ``torch.optim.Adam`` with the same learning rate in 0-255 pixel units, or
``torch.optim.LBFGS(lr=1, max_iter=1, history_size=H, line_search_fn=None)`` called once per step.

torch is imported inside the functions only (``pip install nstjax[torch]``): importing this module
does not need it, and nothing else in nstjax imports this module.
"""

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from nstjax.architecture import BLOCKS, LAYER_INDEX, LAYER_NAMES
from nstjax.run import Run, layer_weight_vector

Features = Callable[[Any], dict[str, Any]]
"""NCHW RGB pixels (0-255, a torch tensor) -> ``{layer: [N, C, h, w]}``."""


def torch_reference(
    arrays: Mapping[str, np.ndarray], last_layer: str, preprocess: dict, device: str = "cpu"
) -> Features:
    """VGG-19's features in PyTorch, built from h5-style arrays (HWIO kernels).

    Args:
        arrays: ``"conv1_1/kernel"`` -> ``[3, 3, I, O]``, ``"conv1_1/bias"`` -> ``[O]``, ...; any
            channel counts (a tiny test network works as well as VGG-19).
        last_layer: the deepest layer computed.
        preprocess: the weights' input convention (:data:`nstjax.weights.CAFFE_PREPROCESS`).
        device: torch's device (``"cpu"``, ``"cuda"``).

    Returns:
        ``features(pixels)`` for NCHW RGB images in 0-255 units, computing conv1_1 ...
        ``last_layer`` with ReLU and 2x2 max pooling between blocks.
    """
    import torch
    import torch.nn.functional as F

    stop = LAYER_INDEX[last_layer]
    convs = []
    for block, (count, _) in enumerate(BLOCKS, start=1):
        for i in range(1, count + 1):
            name = f"conv{block}_{i}"
            if LAYER_INDEX[name] > stop:
                break
            kernel = np.asarray(arrays[f"{name}/kernel"], np.float32).transpose(3, 2, 0, 1)
            bias = np.asarray(arrays[f"{name}/bias"], np.float32)
            kernel = torch.from_numpy(np.ascontiguousarray(kernel)).to(device)
            convs.append((block, name, kernel, torch.from_numpy(bias.copy()).to(device)))
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


def gram(f):
    """The normalised Gram ``F^T F / (h w C)`` of one image's ``[1, C, h, w]`` features."""
    _, c, h, w = f.shape
    f = f.reshape(c, h * w)
    return f @ f.t() / (h * w * c)


def to_nchw(image: np.ndarray, device: str = "cpu"):
    """An ``[H, W, 3]`` image in [0, 1] as a ``[1, 3, H, W]`` torch tensor in 0-255 units."""
    import torch

    pixels = np.ascontiguousarray(image.transpose(2, 0, 1)[None] * 255.0)
    return torch.from_numpy(pixels).to(device)


class TorchRun:
    """One generated image optimised by PyTorch: the reference for one run.

    Args:
        features: from :func:`torch_reference` (its last layer covers the run's layers).
        content: the content image ``[H, W, 3]`` in [0, 1]; also the initial image.
        style: the style image ``[h, w, 3]`` in [0, 1], used as it is (no rescaling).
        run: the weights and layers (``run.content`` / ``run.style`` are ignored).
        optimizer: ``"adam"`` or ``"lbfgs"``.
        history: L-BFGS curvature pairs.
        device: torch's device.
    """

    def __init__(
        self,
        features: Features,
        content,
        style,
        run: Run,
        optimizer: str,
        history: int,
        device: str = "cpu",
    ):
        import torch

        self.torch = torch
        self.features = features
        self.run = run
        cw = dict(zip(LAYER_NAMES, layer_weight_vector(run.content_layers, "content-layers")))
        sw = dict(zip(LAYER_NAMES, layer_weight_vector(run.style_layers, "style-layers")))
        self.content_layers = {n: float(w) for n, w in cw.items() if w > 0}
        self.style_layers = {n: float(w) for n, w in sw.items() if w > 0}
        with torch.no_grad():
            content_feats = features(to_nchw(content, device))
            style_feats = features(to_nchw(style, device))
            self.content_targets = {n: content_feats[n] for n in self.content_layers}
            self.style_targets = {n: gram(style_feats[n]) for n in self.style_layers}
        self.pixels = to_nchw(content, device).clone().requires_grad_(True)
        lr = run.step_size(optimizer)
        if optimizer == "adam":
            self.opt = torch.optim.Adam([self.pixels], lr=lr)
        elif optimizer == "lbfgs":
            self.opt = torch.optim.LBFGS(
                [self.pixels], lr=lr, max_iter=1, history_size=history, line_search_fn=None
            )
        else:
            raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {optimizer!r}")
        self.steps = 0

    def terms(self, pixels) -> tuple:
        """The unweighted ``(content, style, tv)`` terms of ``pixels`` ``[1, 3, H, W]``."""
        feats = self.features(pixels)
        content = sum(
            w * ((feats[n] - self.content_targets[n]) ** 2).mean()
            for n, w in self.content_layers.items()
        )
        style = sum(
            w * ((gram(feats[n]) - self.style_targets[n]) ** 2).mean()
            for n, w in self.style_layers.items()
        )
        _, _, h, w = pixels.shape
        dy = pixels[:, :, 1:, :] - pixels[:, :, :-1, :]
        dx = pixels[:, :, :, 1:] - pixels[:, :, :, :-1]
        tv = ((dy * dy).sum() + (dx * dx).sum()) / (h * w)
        return content, style, tv

    def loss(self, pixels):
        """The total loss (a torch scalar)."""
        content, style, tv = self.terms(pixels)
        run = self.run
        return run.content_weight * content + run.style_weight * style + run.tv_weight * tv

    def step(self) -> float:
        """One optimiser step; returns the loss before it."""

        def closure():
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.pixels)
            loss.backward()
            return loss

        loss = self.opt.step(closure)
        self.steps += 1
        return float(loss.detach())

    def evaluate(self) -> float:
        """The loss of the current image."""
        with self.torch.no_grad():
            return float(self.loss(self.pixels))


class TorchWorker:
    """The PyTorch runs of one case in a child process (spawned: nothing shared with nstjax).

    In one process, nstjax's oneDNN (with its own OpenMP runtime) slowed PyTorch's convolutions
    by 15-25% (measured), so the reference runs apart and times itself.

    Args:
        h5: the VGG-19 ``.h5`` file.
        preprocess: its input convention.
        contents: one content image per run (each also its initial image).
        style: the style image.
        run: the runs' weights and layers.
        optimizer: ``"adam"`` or ``"lbfgs"``.
        history: L-BFGS curvature pairs.
        threads: ``torch.set_num_threads``.
        device: torch's device (``"cuda"`` synchronises before each block's time is read).
    """

    def __init__(
        self,
        h5: str,
        preprocess: dict,
        contents: Sequence[np.ndarray],
        style: np.ndarray,
        run: Run,
        optimizer: str,
        history: int,
        threads: int,
        device: str = "cpu",
    ):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_torch_worker,
            args=(
                child,
                h5,
                preprocess,
                list(contents),
                style,
                run,
                optimizer,
                history,
                threads,
                device,
            ),  # fmt: skip
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
        """Each run's current loss."""
        return self._ask("evaluate")

    def steps(self) -> list[int]:
        """Each run's steps so far."""
        return self._ask("steps")

    def close(self) -> None:
        """Stops the child."""
        self.conn.send(("close",))
        self.process.join(timeout=60)


def _torch_worker(conn, h5, preprocess, contents, style, run, optimizer, history, threads, device):
    try:
        import torch

        from nstjax import weight_files

        torch.set_num_threads(threads)
        features = torch_reference(weight_files.read_h5(h5), "conv5_1", preprocess, device)
        runs = [TorchRun(features, c, style, run, optimizer, history, device) for c in contents]
    except Exception as e:  # reported to the parent at its first request
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
