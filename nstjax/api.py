"""The Python API: describe runs, get stylised images. Host-side glue around :mod:`nstjax.engine`.

A :class:`Run` says which content and style image(s) it uses and its hyperparameters;
:func:`stylize_batch` groups runs by output shape, computes each content's features and each
style's Grams once, builds the per-run arrays, and optimises each group as one compiled batch.
"""

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nstjax import color, engine, targets, vgg
from nstjax.architecture import LAYER_INDEX, LAYER_NAMES, check_layer_names, downsampling
from nstjax.errors import NstjaxError
from nstjax.image import long_side_shape, resize

DEFAULT_CONTENT_LAYERS = ("conv4_2",)
DEFAULT_STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
INITS = ("content", "noise", "style")

LayerWeights = Sequence[str] | Mapping[str, float]


@dataclasses.dataclass(frozen=True)
class Run:
    """One generated image: its inputs and hyperparameters.

    Attributes:
        content: index into the ``contents`` passed to :func:`stylize_batch`.
        style: index into ``styles``, or a mapping ``{index: weight}`` blending several styles'
            Gram targets (weights are normalised to sum to 1).
        content_weight, style_weight, tv_weight: the alpha, beta and TV weights.
        content_layers, style_layers: layer names (equal weights summing to 1) or a mapping from
            layer name to weight.
        learning_rate: step size in 0-255 pixel units (Adam), or L-BFGS's step (1 is natural).
        init: ``"content"``, ``"noise"`` (uniform white noise from ``seed``), ``"style"`` (the first
            style resized to the output), or an ``[H, W, 3]`` array in [0, 1] (resized to fit).
        seed: seeds the noise initialisation.
        style_scale: each style image's longer side relative to the output's longer side.
        colors: ``"style"`` (plain transfer), ``"luminance"`` (keep the content's colours:
            luminance-only transfer, YCbCr) or ``"histogram"`` (match the style's colour mean and
            covariance to the content's before the transfer).
        masks: optional spatial control (Gatys et al. 2017): one ``[H, W]`` mask in [0, 1] per
            style of ``style`` (in its order), assigning output regions to styles (guided Grams).
        normalize_gradients: L1-normalise each loss layer's gradient (neural-style's option).
    """

    content: int = 0
    style: int | Mapping[int, float] = 0
    content_weight: float = 1.0
    style_weight: float = 30.0
    tv_weight: float = 1.0
    content_layers: LayerWeights = DEFAULT_CONTENT_LAYERS
    style_layers: LayerWeights = DEFAULT_STYLE_LAYERS
    learning_rate: float = 4.0
    init: Any = "content"
    seed: int = 0
    style_scale: float = 1.0
    colors: str = "style"
    masks: Sequence[np.ndarray] | None = None
    normalize_gradients: bool = False

    def style_blend(self) -> dict[int, float]:
        blend = {self.style: 1.0} if isinstance(self.style, int) else dict(self.style)
        total = sum(blend.values())
        if not blend or total <= 0:
            raise NstjaxError(f"style blend {self.style!r}: weights must be positive")
        return {k: v / total for k, v in blend.items()}


@dataclasses.dataclass
class Result:
    """One run's outcome (host arrays)."""

    run: Run
    image: np.ndarray  # [H, W, 3] float32 in [0, 1]
    history: np.ndarray  # [steps, 4] loss, content, style, tv before each step
    final: dict[str, float]  # loss terms of the final image
    failed_at: int | None  # step at which a non-finite value stopped the run, else None


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


def validate_run(run: Run, n_contents: int, n_styles: int) -> None:
    """Raises NstjaxError naming the bad field of ``run``."""
    if not 0 <= run.content < n_contents:
        raise NstjaxError(f"run content index {run.content} out of range (0..{n_contents - 1})")
    for index in run.style_blend():
        if not 0 <= index < n_styles:
            raise NstjaxError(f"run style index {index} out of range (0..{n_styles - 1})")
    for name in ("content_weight", "style_weight", "tv_weight"):
        value = getattr(run, name)
        if not (value >= 0 and math.isfinite(value)):
            raise NstjaxError(f"{name.replace('_', '-')} must be finite and >= 0, got {value}")
    if not (run.learning_rate > 0 and math.isfinite(run.learning_rate)):
        raise NstjaxError(f"lr must be finite and > 0, got {run.learning_rate}")
    if isinstance(run.init, str) and run.init not in INITS:
        raise NstjaxError(f"init must be one of {INITS} or an image, got {run.init!r}")
    if not (run.style_scale > 0 and math.isfinite(run.style_scale)):
        raise NstjaxError(f"style-scale must be finite and > 0, got {run.style_scale}")
    if run.colors not in color.COLOR_MODES:
        raise NstjaxError(f"colors must be one of {color.COLOR_MODES}, got {run.colors!r}")
    if run.masks is not None and len(run.masks) != len(run.style_blend()):
        raise NstjaxError(
            f"masks: {len(run.masks)} mask(s) for {len(run.style_blend())} style(s); "
            "give one mask per style"
        )
    layer_weight_vector(run.content_layers, "content-layers")
    layer_weight_vector(run.style_layers, "style-layers")


def program_for(runs: Sequence[Run], **static) -> engine.Program:
    """The static program serving ``runs``: the union of the layers any of them weights."""
    content = np.zeros(len(LAYER_NAMES))
    style = np.zeros(len(LAYER_NAMES))
    for run in runs:
        content += layer_weight_vector(run.content_layers, "content-layers")
        style += layer_weight_vector(run.style_layers, "style-layers")
    return engine.Program(
        content_layers=tuple(n for n, w in zip(LAYER_NAMES, content) if w > 0),
        style_layers=tuple(n for n, w in zip(LAYER_NAMES, style) if w > 0),
        **static,
    )


def _noise(seed: int, shape: tuple[int, int]) -> np.ndarray:
    return np.asarray(jax.random.uniform(jax.random.key(seed), (*shape, 3), jnp.float32))


def initial_image(run: Run, content: np.ndarray, styles: Sequence[np.ndarray]) -> np.ndarray:
    """The run's starting image ``[H, W, 3]`` in [0, 1], shaped like its content."""
    shape = content.shape[:2]
    if isinstance(run.init, str):
        if run.init == "content":
            return content
        if run.init == "noise":
            return _noise(run.seed, shape)
        first_style = next(iter(run.style_blend()))
        return resize(_style_image(run, styles[first_style], content), shape)
    image = np.asarray(run.init, np.float32)
    return image if image.shape[:2] == shape else resize(image, shape)


def _pad(items: list, size: int) -> list:
    return items + [items[-1]] * (size - len(items))


def _style_image(run: Run, style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """A style image as the run sees it: scaled relative to the output, recoloured if asked."""
    size = max(1, round(run.style_scale * max(content.shape[:2])))
    image = resize(style, long_side_shape(style.shape, size))
    return color.match_histogram(image, content) if run.colors == "histogram" else image


def _style_key(run: Run, style_id: int) -> tuple:
    """What a style target depends on: the image, its scale, and the content it is matched to."""
    return (style_id, run.style_scale, run.content if run.colors == "histogram" else None)


def _downsample_mask(mask: np.ndarray, shape: tuple[int, int], factor: int) -> np.ndarray:
    """A mask at the output size, averaged over ``factor``-sized blocks as VGG's pooling does."""
    m = resize(np.asarray(mask, np.float32)[..., None], shape)[..., 0]
    h, w = shape[0] // factor, shape[1] // factor
    return m[: h * factor, : w * factor].reshape(h, factor, w, factor).mean(axis=(1, 3))


def _guided_targets(runs, program, grams, shape):
    """``[R, K, C, C]`` Grams and ``[R, K, h, w]`` masks for a batch using spatial control.

    A run without masks is one region (a mask of ones) with its blended target; unused regions
    have zero masks and zero targets, which contribute nothing.
    """
    regions = max(len(r.masks) if r.masks is not None else 1 for r in runs)
    style, masks = {}, {}
    for name in program.style_layers:
        factor = downsampling(name)
        hw = (shape[0] // factor, shape[1] // factor)
        per_run_grams, per_run_masks = [], []
        for r in runs:
            blend = r.style_blend()
            zero = jnp.zeros_like(grams[_style_key(r, next(iter(blend)))][name])
            if r.masks is None:
                g = [sum(w * grams[_style_key(r, s)][name] for s, w in blend.items())]
                m = [np.ones(hw, np.float32)]
            else:
                g = [grams[_style_key(r, s)][name] for s in blend]
                m = [_downsample_mask(mask, shape, factor) for mask in r.masks]
            g += [zero] * (regions - len(g))
            m += [np.zeros(hw, np.float32)] * (regions - len(m))
            per_run_grams.append(jnp.stack(g))
            per_run_masks.append(np.stack(m))
        style[name] = jnp.stack(per_run_grams)
        masks[name] = jnp.asarray(np.stack(per_run_masks))
    return style, masks


# --- mesh: sharding the run axis over devices (sweeps, issue 4) ---
def _place_on_mesh(mesh, params, pixels, hyper, run_targets):
    """Shards the per-run arrays' leading axis over ``mesh``'s ``"runs"`` axis; replicates params."""
    from jax.sharding import NamedSharding, PartitionSpec

    by_run = NamedSharding(mesh, PartitionSpec("runs"))
    replicated = NamedSharding(mesh, PartitionSpec())
    return (
        jax.device_put(params, replicated),
        jax.device_put(pixels, by_run),
        jax.device_put(hyper, by_run),
        jax.device_put(run_targets, by_run),
    )


# --- end mesh ---


def _optimise_group(
    params, program, contents, styles, runs, steps, loop, chunk, on_chunk, mesh=None
):
    """One compiled batch: runs sharing an output shape (padded to a fixed batch by the caller).

    With a ``mesh``, the batch (a multiple of its size) is sharded over its ``"runs"`` axis.
    """
    content_ids = sorted({r.content for r in runs})
    stack = np.stack([contents[i] for i in content_ids])
    feats = {}
    if program.content_layers:  # pure texture synthesis needs no content features
        feats = targets.content_features(
            params,
            stack,
            layers=program.content_layers,
            pooling=program.pooling,
            dtype=program.dtype,
        )
    grams = {}
    for r in runs:
        for s in r.style_blend():
            key = _style_key(r, s)
            if key not in grams:
                grams[key] = (
                    targets.style_grams(
                        params,
                        _style_image(r, styles[s], contents[r.content]),
                        layers=program.style_layers,
                        pooling=program.pooling,
                        dtype=program.dtype,
                    )
                    if program.style_layers  # a pure content reconstruction needs no Grams
                    else {}
                )
    row = {c: i for i, c in enumerate(content_ids)}
    content_index = jnp.asarray([row[r.content] for r in runs])
    content_targets = {name: f[content_index] for name, f in feats.items()}
    if program.guided:
        style_targets, masks = _guided_targets(runs, program, grams, stack.shape[1:3])
    else:
        masks = None
        style_targets = {
            name: jnp.stack(
                [
                    sum(w * grams[_style_key(r, s)][name] for s, w in r.style_blend().items())
                    for r in runs
                ]
            )
            for name in program.style_layers
        }
    run_targets = engine.Targets(content=content_targets, style=style_targets, masks=masks)
    hyper = engine.Hyper(
        content_weight=jnp.asarray([r.content_weight for r in runs], jnp.float32),
        style_weight=jnp.asarray([r.style_weight for r in runs], jnp.float32),
        tv_weight=jnp.asarray([r.tv_weight for r in runs], jnp.float32),
        content_layer_weights=jnp.asarray(
            np.stack([layer_weight_vector(r.content_layers, "content-layers") for r in runs])
        ),
        style_layer_weights=jnp.asarray(
            np.stack([layer_weight_vector(r.style_layers, "style-layers") for r in runs])
        ),
        learning_rate=jnp.asarray([r.learning_rate for r in runs], jnp.float32),
        normalize_gradients=jnp.asarray([r.normalize_gradients for r in runs]),
    )
    pixels = np.stack([initial_image(r, contents[r.content], styles) for r in runs]) * 255.0
    if mesh is not None:  # mesh
        params, pixels, hyper, run_targets = _place_on_mesh(
            mesh, params, pixels, hyper, run_targets
        )
    return engine.optimize(
        params,
        program,
        pixels,
        hyper,
        run_targets,
        steps,
        loop=loop,
        chunk=chunk,
        on_chunk=on_chunk,
    )


def prepare_params(params, mesh: jax.sharding.Mesh | None = None):
    """``params`` with kernels prepared once for this backend's fastest convolution
    (:func:`nstjax.vgg.prepare`), unless they already are. Over a mesh of several devices, XLA's
    convolutions: oneDNN's custom call has no sharding rule."""
    if "prepared" in params:
        return params
    several = mesh is not None and mesh.size > 1
    return vgg.prepare(params, "flipped" if several and jax.default_backend() == "cpu" else None)


def stylize_batch(
    params,
    contents: Sequence[np.ndarray],
    styles: Sequence[np.ndarray],
    runs: Sequence[Run],
    *,
    steps: int = 500,
    optimizer: str = "adam",
    pooling: str = "max",
    lbfgs_history: int = 20,
    dtype: str = "float32",
    remat: bool = False,
    batch_size: int | None = None,
    loop: str | None = None,
    chunk: int = 50,
    progress: Callable[[int, int, np.ndarray], None] | None = None,
    on_snapshot: Callable[[int, list[int], np.ndarray], None] | None = None,
    mesh: jax.sharding.Mesh | None = None,
    layers_from: Sequence[Run] | None = None,
) -> list[Result]:
    """Optimises many runs, batched: one compiled program per output shape.

    Args:
        params: VGG parameters (:func:`nstjax.vgg.load_params`).
        contents: content images ``[H, W, 3]`` in [0, 1] (already at the output size).
        styles: style images ``[H, W, 3]`` in [0, 1], any size: each run resizes them to its
            ``style_scale`` times the output's longer side.
        runs: what to generate; see :class:`Run`.
        steps: optimisation steps per run.
        optimizer: ``"adam"`` or ``"lbfgs"``.
        pooling: ``"max"`` or ``"avg"``.
        lbfgs_history: curvature pairs kept by L-BFGS.
        dtype: ``"float32"`` or ``"bfloat16"`` activations.
        remat: rematerialise VGG blocks (less memory, more compute).
        batch_size: most runs per compiled call; a short last batch is padded so that every
            batch of a shape reuses one compiled program. ``None``: all runs of a shape at once.
        loop: see :func:`nstjax.engine.optimize`.
        chunk: steps between progress reports and snapshots.
        progress: called as ``progress(done_steps, steps, metrics)`` with the ``[n, R, 4]``
            metrics of the last chunk.
        on_snapshot: called as ``on_snapshot(step, run_indices, images)`` after every chunk with
            the current images ``[R, H, W, 3]`` in [0, 1].
        layers_from: runs whose layers the compiled program must cover (default ``runs``): a sweep
            passes its whole group so that every batch of the group shares one program.
        mesh: a 1-D :class:`jax.sharding.Mesh` with axis ``"runs"``: each batch's run axis is
            sharded over it (batches padded to a multiple of its size), the VGG parameters
            replicated. ``None``: one device.

    Returns:
        One :class:`Result` per run, in the order of ``runs``.
    """
    if steps < 1:
        raise NstjaxError(f"steps must be >= 1, got {steps}")
    for run in runs:
        validate_run(run, len(contents), len(styles))
    program = program_for(
        runs if layers_from is None else layers_from,
        pooling=pooling,
        optimizer=optimizer,
        lbfgs_history=lbfgs_history,
        dtype=dtype,
        remat=remat,
        guided=any(r.masks is not None for r in runs),
    )
    params = prepare_params(params, mesh)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(tuple(contents[run.content].shape), []).append(i)
    results: list[Result | None] = [None] * len(runs)
    for indices in groups.values():
        size = batch_size or len(indices)
        if mesh is not None:  # mesh: every device gets the same number of runs
            size = -(-size // mesh.size) * mesh.size
        for start in range(0, len(indices), size):
            batch = indices[start : start + size]
            padded = _pad([runs[i] for i in batch], size)

            def on_chunk(done, state, metrics, batch=batch):
                if progress is not None:
                    progress(done, steps, metrics[:, : len(batch)])
                if on_snapshot is not None:
                    images = np.clip(np.asarray(state.pixels[: len(batch)]) / 255.0, 0.0, 1.0)
                    on_snapshot(done, batch, images)

            outcome = _optimise_group(
                params, program, contents, styles, padded, steps, loop, chunk, on_chunk, mesh
            )
            for j, i in enumerate(batch):
                failed = int(outcome.failed_at[j])
                image = np.clip(outcome.pixels[j] / 255.0, 0.0, 1.0)
                if runs[i].colors == "luminance":
                    image = color.luminance_transfer(image, contents[runs[i].content])
                results[i] = Result(
                    run=runs[i],
                    image=image,
                    history=outcome.history[:, j],
                    final=dict(zip(engine.METRICS, map(float, outcome.final[j]))),
                    failed_at=failed if failed >= 0 else None,
                )
    return results


def stylize(
    content: np.ndarray, style: np.ndarray, *, params=None, steps: int = 500, **kwargs
) -> np.ndarray:
    """Stylises one content image with one style image and returns the result.

    Args:
        content: ``[H, W, 3]`` in [0, 1], at the output size.
        style: ``[H, W, 3]`` in [0, 1].
        params: VGG parameters; loaded with :func:`nstjax.vgg.load_params` when ``None``.
        steps: optimisation steps.
        **kwargs: fields of :class:`Run` (weights, layers, learning_rate, init, seed) and the
            keyword options of :func:`stylize_batch` (optimizer, pooling, ...).

    Returns:
        ``[H, W, 3]`` float32 in [0, 1].
    """
    run_fields = {f.name for f in dataclasses.fields(Run)}
    run = Run(**{k: v for k, v in kwargs.items() if k in run_fields})
    options = {k: v for k, v in kwargs.items() if k not in run_fields}
    params = vgg.load_params() if params is None else params
    (result,) = stylize_batch(params, [content], [style], [run], steps=steps, **options)
    return result.image


def parse_schedule(text: str) -> list[tuple[int, int]]:
    """``"256:300,512:200"`` -> ``[(256, 300), (512, 200)]`` (longer side : steps)."""
    schedule = []
    for item in text.split(","):
        size, sep, steps = item.strip().partition(":")
        try:
            pair = (int(size), int(steps))
        except ValueError:
            pair = None
        if not sep or pair is None or min(pair) < 1:
            raise NstjaxError(
                f"--multiscale {text!r}: expected SIZE:STEPS,... with positive integers"
            )
        schedule.append(pair)
    if [s for s, _ in schedule] != sorted(s for s, _ in schedule):
        raise NstjaxError(f"--multiscale {text!r}: sizes must grow from coarse to fine")
    return schedule


def stylize_multiscale(
    params,
    contents: Sequence[np.ndarray],
    styles: Sequence[np.ndarray],
    runs: Sequence[Run],
    schedule: Sequence[tuple[int, int]],
    **options,
) -> list[Result]:
    """Coarse-to-fine: each ``(size, steps)`` of ``schedule`` starts from the previous result.

    Args:
        params: VGG parameters.
        contents: content images at full resolution; each scale resizes them so the longer side
            is that scale's size.
        styles: style images (resized per run by ``style_scale``, relative to each scale).
        runs: as for :func:`stylize_batch`; a run's ``init`` applies to the first scale only.
        schedule: ``[(size, steps), ...]`` with growing sizes, e.g. ``[(256, 300), (512, 200)]``.
        **options: keyword options of :func:`stylize_batch`.

    Returns:
        One :class:`Result` per run at the last scale's size; ``history`` spans all scales.
    """
    from nstjax.image import resize_long_side

    results: list[Result] = []
    histories = [[] for _ in runs]
    current = list(runs)
    on_snapshot = options.pop("on_snapshot", None)
    done = 0  # steps of the earlier scales: snapshots count a run's steps over the schedule
    for size, steps in schedule:
        scaled = [resize_long_side(c, size) for c in contents]
        if on_snapshot is not None:
            options["on_snapshot"] = lambda step, idx, imgs, done=done: on_snapshot(
                done + step, idx, imgs
            )
        results = stylize_batch(params, scaled, styles, current, steps=steps, **options)
        done += steps
        for history, result in zip(histories, results):
            history.append(result.history)
        current = [dataclasses.replace(r, init=res.image) for r, res in zip(runs, results)]
    for run, result, history in zip(runs, results, histories):
        result.run = run
        result.history = np.concatenate(history)
    return results
