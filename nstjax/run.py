"""What a user asks for: a :class:`Run` per generated image, :class:`Options` for a whole call.

This module is the one source of nstjax's defaults and allowed values: the command line, the
sweep configs (:func:`nstjax.sweep.default_config`) and the Python API all read them from here.

- :class:`Run` holds everything that may differ between the runs of one compiled batch (traced
  per run: weights, layers, learning rate, initialisation, seed, style scale, colours, masks).
- :class:`Options` holds what is static for a call: it shapes the compiled program (optimiser,
  pooling, dtype, remat, the convolution) or the loop around it (steps, batch size, chunk).
"""

import dataclasses
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from nstjax.architecture import (
    CONTENT_LAYER,
    LAYER_INDEX,
    LAYER_NAMES,
    STYLE_LAYERS,
    check_layer_names,
)
from nstjax.color import COLOR_MODES
from nstjax.errors import NstjaxError
from nstjax.init import DEFAULT_NOISE_SCALE, INIT_KINDS
from nstjax.loop import CHUNK
from nstjax.optim import LBFGS_HISTORY, OPTIMIZERS
from nstjax.style_losses import STYLE_LOSSES
from nstjax.style_mix import check_style_losses, parse_style_loss
from nstjax.vgg import POOLINGS as VGG_POOLINGS

DEFAULT_SIZE = 512
"""Longer side of the output, pixels."""
DEFAULT_CONTENT_LAYERS: tuple[str, ...] = (CONTENT_LAYER,)
DEFAULT_STYLE_LAYERS: tuple[str, ...] = STYLE_LAYERS
DEFAULT_STYLE_LOSS = "gram"
"""The style loss of a run that names none."""
STYLE_LOSS_NAMES: tuple[str, ...] = tuple(STYLE_LOSSES)
"""The style losses a run may mix (:data:`nstjax.style_losses.STYLE_LOSSES`)."""
INITS: tuple[str, ...] = INIT_KINDS  # ("content", "noise", "uniform", "style"): nstjax.init
POOLINGS: tuple[str, ...] = VGG_POOLINGS  # nstjax.vgg
DTYPES: tuple[str, ...] = ("float32", "bfloat16")
LOOPS: tuple[str, ...] = ("python", "scan")
DEFAULT_LEARNING_RATES: dict[str, float] = {
    "adam": 4.0,
    "lbfgs": 1.0,
    "lbfgs_wolfe": 1.0,
    "lbfgs_wolfe_torch": 1.0,
}
"""The step size when a run gives none: Adam's in 0-255 pixel units; L-BFGS's step along its
direction (1 is natural, as neural-style runs it; the line search's trial step, scaled at a run's
first step by the optimiser's first-step rule, :func:`nstjax.optim.lbfgs_wolfe`)."""

INTERACTIVE_CHUNK = 10
"""Steps between progress updates of ``nstjax stylize`` without ``--save-every``, and so the step
an interrupted run's kept image is from: an interactive command reports more often."""

LayerWeights = Sequence[str] | Mapping[str, float]


def default_learning_rate(optimizer: str) -> float:
    """The learning rate a run uses with ``optimizer`` unless it sets one."""
    return DEFAULT_LEARNING_RATES[optimizer]


@dataclasses.dataclass(frozen=True)
class Run:
    """One generated image: its inputs and hyperparameters (the package's defaults).

    Attributes:
        content: index into the content images of the call (or the key of a mapping of them).
        style: index (or key) into the style images, or a mapping ``{index: weight}`` blending
            several styles' Gram targets (weights are normalised to sum to 1).
        content_weight, style_weight, tv_weight: the alpha, beta and TV weights.
        content_layers, style_layers: layer names (equal weights summing to 1), a
            comma-separated string of them, or a mapping from layer name to weight.
        learning_rate: step size; ``None`` takes :func:`default_learning_rate` of the optimiser.
        init: ``"content"``, ``"noise"`` (the network's mean colour plus Gaussian noise of
            ``noise_scale`` grey levels, as Gatys' and neural-style's code: :mod:`nstjax.init`),
            ``"uniform"`` (uniform noise over [0, 1]), ``"style"`` (the first style resized to
            the output), or an ``[H, W, 3]`` array in [0, 1] (resized).
        seed: seeds the noise initialisation.
        noise_scale: standard deviation of ``init="noise"`` in grey levels (0-255 units); 1 is
            Gatys' code, 0.001 neural-style's.
        style_scale: each style image's longer side relative to the output's longer side.
        colors: ``"style"`` (plain transfer), ``"luminance"`` (keep the content's colours:
            luminance-only transfer, YCbCr) or ``"histogram"`` (match the style's colour mean and
            covariance to the content's before the transfer).
        masks: optional spatial control (Gatys et al. 2017): one ``[H, W]`` mask in [0, 1] per
            style of ``style`` (in its order), assigning output regions to styles (guided Grams).
        normalize_gradients: L1-normalise each loss layer's gradient (neural-style's option).
        loss_tolerance: the run stops (converged) once the loss's relative change over one step
            falls to this (0: never).
        grad_tolerance: the run stops once the largest gradient entry (0-255 pixel units) falls
            to this (0: never).
        style_loss: the style loss(es): a name of :data:`nstjax.style_losses.STYLE_LOSSES`, a
            weighted mix ``"gram:1,sliced_wasserstein:0.5"`` or a mapping name -> weight; the
            weights multiply the style weight. Losses other than ``gram`` take one style image
            (no blend); with masks, only those that support them (gram, mean_std, gaussian_w2).
        temporal: video: ``[J, H, W, 3]`` stylised neighbouring frames in [0, 1] warped onto this
            frame, the targets of Ruder et al.'s temporal loss (:func:`nstjax.losses.temporal_loss`).
        temporal_reliability: ``[J, H, W]`` in [0, 1], each warped frame's per-pixel reliability.
        temporal_weight: the temporal loss's weight (0 or no ``temporal``: off).
        upscale_detail: coarse to fine only (:func:`nstjax.schedule.stylize_multiscale`): each
            later scale starts from the previous scale's image upsampled plus this fraction of
            the content's detail between the two scales (the content at this scale minus the
            previous scale's content upsampled); 0: the upsampled image alone, as the reference
            implementations.
    """

    content: Hashable = 0
    style: Hashable | Mapping[Hashable, float] = 0
    content_weight: float = 1.0
    style_weight: float = 30.0
    tv_weight: float = 1.0
    content_layers: LayerWeights = DEFAULT_CONTENT_LAYERS
    style_layers: LayerWeights = DEFAULT_STYLE_LAYERS
    learning_rate: float | None = None
    init: Any = "content"
    seed: int = 0
    noise_scale: float = DEFAULT_NOISE_SCALE
    style_scale: float = 1.0
    colors: str = "style"
    masks: Sequence[np.ndarray] | None = None
    normalize_gradients: bool = False
    loss_tolerance: float = 0.0
    grad_tolerance: float = 0.0
    style_loss: str | Mapping[str, float] = DEFAULT_STYLE_LOSS
    temporal: np.ndarray | None = None
    temporal_reliability: np.ndarray | None = None
    temporal_weight: float = 0.0
    upscale_detail: float = 0.0

    def style_loss_weights(self) -> dict[str, float]:
        """The style losses this run uses, ``{name: weight}`` (:func:`parse_style_loss`)."""
        return parse_style_loss(self.style_loss)

    def style_blend(self) -> dict[int, float]:
        """The styles this run uses, ``{index: weight}`` with weights summing to 1."""
        blend = dict(self.style) if isinstance(self.style, Mapping) else {self.style: 1.0}
        total = sum(blend.values())
        finite = all(math.isfinite(w) and w >= 0 for w in blend.values())
        if not blend or not finite or not total > 0:
            raise NstjaxError(
                f"style blend {self.style!r}: weights must be finite, >= 0 and not all 0"
            )
        return {k: v / total for k, v in blend.items()}

    def step_size(self, optimizer: str) -> float:
        """The learning rate this run uses with ``optimizer``."""
        if self.learning_rate is None:
            return default_learning_rate(optimizer)
        return self.learning_rate


@dataclasses.dataclass(frozen=True)
class Options:
    """What is static for a call: changing a field recompiles or changes the loop.

    Attributes:
        steps: optimisation steps of every run.
        optimizer: one of :data:`OPTIMIZERS`.
        pooling: one of :data:`POOLINGS` (``"avg"`` is the paper's choice).
        lbfgs_history: curvature pairs kept by L-BFGS.
        dtype: activation dtype, one of :data:`DTYPES` (Grams and losses accumulate in fp32).
        remat: rematerialise VGG blocks in the backward pass (memory for compute).
        convolution: the kernels of VGG's convolutions (``nstjax.kernels.CONVOLUTIONS``);
            ``None``: chosen once for the backend and mesh (:func:`nstjax.kernels.choose`).
        batch_size: most runs per compiled batch (``None``: as many as fit in memory).
        loop: ``"python"`` (a jitted step called from Python) or ``"scan"`` (``chunk`` steps per
            compiled call); ``None`` picks the faster for the backend.
        chunk: steps between host synchronisations (progress, snapshots).
        quality: measure each finished run (:mod:`nstjax.quality`) into ``Result.quality``.
        average_decay: iterate averaging (:mod:`nstjax.averaging`; Adam or fixed-step L-BFGS):
            each run returns the bias-corrected moving average of its iterates with this decay
            in [0, 1) instead of its last iterate (crowsonkb/style-transfer-pytorch: 0.99); 0: off.
    """

    steps: int = 500
    optimizer: str = "adam"
    pooling: str = "max"
    lbfgs_history: int = LBFGS_HISTORY
    dtype: str = "float32"
    remat: bool = False
    convolution: str | None = None
    batch_size: int | None = None
    loop: str | None = None
    chunk: int = CHUNK
    quality: bool = False
    average_decay: float = 0.0

    def program_key(self) -> tuple:
        """The fields that go into the compiled program (runs differing in them never share a
        batch)."""
        return (
            self.steps,
            self.optimizer,
            self.pooling,
            self.lbfgs_history,
            self.dtype,
            self.remat,
            self.average_decay,
        )


COARSE_TO_FINE = ((0.25, 0.4), (0.5, 0.4), (1.0, 0.2))
"""nstjax's coarse-to-fine form: ``(fraction of the output size, fraction of the steps)`` per
scale; measured against neural-style's recipe in docs/benchmarks.md (Time to quality)."""
SMALLEST_SCALE = 24
"""No scale of :func:`coarse_to_fine` is smaller than this many pixels (the measures' least)."""


def coarse_to_fine(size: int, steps: int) -> tuple[tuple[int, int], ...]:
    """:data:`COARSE_TO_FINE` for an output of ``size`` px in ``steps`` steps in all, as
    ``((size, steps), ...)``: ``coarse_to_fine(512, 500) == ((128, 200), (256, 200), (512, 100))``."""
    return tuple(
        (max(SMALLEST_SCALE, round(size * f)), max(1, round(steps * s))) for f, s in COARSE_TO_FINE
    )


def layer_weight_vector(layers: LayerWeights, option: str) -> np.ndarray:
    """A ``[16]`` weight vector over conv1_1 ... conv5_4 from names or a name->weight mapping."""
    if isinstance(layers, str):
        layers = [n.strip() for n in layers.split(",") if n.strip()]
    if isinstance(layers, Mapping):
        weights = dict(layers)
    else:
        names = list(layers)
        weights = {n: 1.0 / len(names) for n in names} if names else {}
    check_layer_names(weights, option)
    bad = {n: w for n, w in weights.items() if not (w >= 0 and math.isfinite(w))}
    if bad:
        raise NstjaxError(f"{option}: layer weights must be finite and >= 0, got {bad}")
    vector = np.zeros(len(LAYER_NAMES), np.float32)
    for name, w in weights.items():
        vector[LAYER_INDEX[name]] = w
    return vector


def _check_number(value, name: str, *, positive: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise NstjaxError(f"{name.replace('_', '-')} must be finite and {bound}, got {value!r}")


def validate_run(run: Run, n_contents: int, n_styles: int) -> None:
    """Raises NstjaxError naming the bad field of ``run`` (images indexed by position)."""
    if not (isinstance(run.content, int) and 0 <= run.content < n_contents):
        raise NstjaxError(f"run content index {run.content} out of range (0..{n_contents - 1})")
    for index in run.style_blend():
        if not (isinstance(index, int) and 0 <= index < n_styles):
            raise NstjaxError(f"run style index {index} out of range (0..{n_styles - 1})")
    for name in ("content_weight", "style_weight", "tv_weight", "loss_tolerance", "grad_tolerance"):
        _check_number(getattr(run, name), name)
    if run.learning_rate is not None:
        _check_number(run.learning_rate, "lr", positive=True)
    if isinstance(run.init, str) and run.init not in INITS:
        raise NstjaxError(f"init must be one of {', '.join(INITS)} or an image, got {run.init!r}")
    _check_number(run.noise_scale, "noise_scale")
    _check_number(run.upscale_detail, "upscale_detail")
    _check_number(run.style_scale, "style_scale", positive=True)
    if run.colors not in COLOR_MODES:
        raise NstjaxError(f"colors must be one of {COLOR_MODES}, got {run.colors!r}")
    if run.masks is not None and len(run.masks) != len(run.style_blend()):
        raise NstjaxError(
            f"masks: {len(run.masks)} mask(s) for {len(run.style_blend())} style(s); "
            "give one mask per style"
        )
    layer_weight_vector(run.content_layers, "content-layers")
    layer_weight_vector(run.style_layers, "style-layers")
    _check_style_loss(run)


def _check_style_loss(run: Run) -> None:
    used = [name for name, w in run.style_loss_weights().items() if w > 0]
    blended = len(run.style_blend()) > 1 and run.masks is None
    check_style_losses(used, guided=run.masks is not None, blended=blended)


def validate_options(options: Options) -> None:
    """Raises NstjaxError naming the bad field of ``options``."""
    for name in ("steps", "lbfgs_history", "chunk"):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise NstjaxError(f"{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
    if options.batch_size is not None and (
        isinstance(options.batch_size, bool)
        or not isinstance(options.batch_size, int)
        or options.batch_size < 1
    ):
        raise NstjaxError(f"batch-size must be an integer >= 1, got {options.batch_size!r}")
    for name, allowed in (
        ("optimizer", OPTIMIZERS),
        ("pooling", POOLINGS),
        ("dtype", DTYPES),
    ):
        if getattr(options, name) not in allowed:
            raise NstjaxError(
                f"{name} must be one of {', '.join(allowed)}, got {getattr(options, name)!r}"
            )
    if options.loop is not None and options.loop not in LOOPS:
        raise NstjaxError(f"loop must be one of {', '.join(LOOPS)}, got {options.loop!r}")
    _check_average_decay(options)
    if not isinstance(options.remat, bool):
        raise NstjaxError(f"remat must be True or False, got {options.remat!r}")
    if options.convolution is not None:
        from nstjax import kernels

        reason = kernels.unavailable_reason(options.convolution)
        if reason:
            raise NstjaxError(f"convolution {options.convolution!r}: {reason}")


def _check_average_decay(options: Options) -> None:
    decay = options.average_decay
    number = isinstance(decay, (int, float)) and not isinstance(decay, bool)
    if not (number and 0.0 <= decay < 1.0):
        raise NstjaxError(f"average-decay must be a number in [0, 1), got {decay!r}")
    if decay and options.optimizer not in ("adam", "lbfgs"):
        raise NstjaxError(
            f"average-decay averages the iterates of adam or lbfgs, not {options.optimizer!r}"
        )
