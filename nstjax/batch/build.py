"""The builder: a batch's runs and images -> the engine's arrays (initial pixels, Hyper, Targets).

Content features are computed once per distinct content image and style-loss targets once per
distinct style image as a run sees it (its scale, and for histogram matching the content it is
matched to); each run's targets are then gathered or blended from those, the same way for every
style loss (:func:`nstjax.style_mix.blend`). Everything per run gets a
leading run axis, so a batch that varies any of it compiles once.
"""

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nstjax import color, engine, init, style_losses, style_mix, targets
from nstjax.architecture import downsampling
from nstjax.errors import NstjaxError
from nstjax.resample import long_side_shape, resize
from nstjax.run import Run, layer_weight_vector

Images = Sequence[np.ndarray] | Mapping[Any, np.ndarray]
"""Images indexed by a run's ``content`` / ``style`` (a list by position, or a mapping by key)."""


class Built(NamedTuple):
    """What :func:`nstjax.engine.optimize` takes besides the parameters and the program."""

    pixels: np.ndarray  # [R, H, W, 3] initial images, 0-255 units
    hyper: engine.Hyper
    targets: engine.Targets


def style_image(run: Run, style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """A style image as ``run`` sees it: scaled relative to the output, recoloured if asked."""
    size = max(1, round(run.style_scale * max(content.shape[:2])))
    image = resize(style, long_side_shape(style.shape, size))
    return color.match_histogram(image, content) if run.colors == "histogram" else image


def initial_image(
    run: Run, content: np.ndarray, styles: Images, mean_rgb: np.ndarray = init.CAFFE_MEAN_RGB
) -> np.ndarray:
    """The run's starting image ``[H, W, 3]`` in [0, 1], shaped like its content
    (:func:`nstjax.init.initial_image`; ``mean_rgb`` centres ``"noise"``)."""
    style = None
    if isinstance(run.init, str) and run.init == "style":
        first_style = next(iter(run.style_blend()))
        style = style_image(run, styles[first_style], content)
    return init.initial_image(
        run.init, content, style, run.seed, run.noise_scale, mean_rgb=mean_rgb
    )


def _style_key(run: Run, style: Any) -> tuple:
    """What a style target depends on: the image, its scale, and the content it is matched to."""
    return (style, run.style_scale, run.content if run.colors == "histogram" else None)


def _per_style_image(runs, contents, styles, compute) -> dict:
    """``compute(image)`` once for every distinct style image as the runs see it (its scale, and
    for histogram matching its content), by :func:`_style_key`."""
    found = {}
    for r in runs:
        for s in r.style_blend():
            key = _style_key(r, s)
            if key not in found:
                found[key] = compute(style_image(r, styles[s], contents[r.content]))
    return found


def check_patch_sizes(program: style_mix.StyleProgram, style: tuple, output: tuple) -> None:
    """The MRF loss needs at least one 3x3 patch at each of its layers, in both images (``style``
    and ``output`` are ``(h, w)``; ``program`` an ``engine.Program``'s or feed-forward
    ``Objective``'s ``style``)."""
    if "mrf" not in program.losses:
        return
    size = style_losses.MRF_PATCH
    for layer in program.layers_of("mrf"):
        factor = downsampling(layer)
        for what, (h, w) in (("output", output), ("style image", style)):
            if h // factor < size or w // factor < size:
                raise NstjaxError(
                    f"style-loss 'mrf' at {layer}: the {what} ({w}x{h} px) gives "
                    f"{w // factor}x{h // factor} features, less than its {size}x{size} "
                    "patches; use larger images or shallower style layers"
                )


def _style_targets(params, program: engine.Program, runs, contents, styles) -> dict:
    """Every style loss's targets (loss -> layer -> representation) for every distinct style
    image as the runs see it."""
    style = program.style
    if not program.style_layers:  # a pure content reconstruction needs no style targets
        return _per_style_image(runs, contents, styles, lambda image: {})
    return _per_style_image(
        runs,
        contents,
        styles,
        lambda image: targets.style_targets(
            params, image, program=style, pooling=program.pooling, dtype=program.dtype
        ),
    )


def _run_target(run: Run, name: str, layer: str, found: dict, regions: int | None):
    """One run's target of the loss ``name`` at ``layer``.

    Without masks, its styles' targets blended (:func:`nstjax.style_mix.blend`). With
    ``regions``, ``[K, ...]``: a run with masks has one region per style, a run without one
    region (its blended target); unused regions get the target of zero features, which scores
    0 under a zero mask.
    """
    blend = run.style_blend()
    per_style = [found[_style_key(run, s)][name][layer] for s in blend]
    if not (regions and run.masks is not None):
        per_style = [style_mix.blend(name, per_style, list(blend.values()))]
    if not regions:
        return per_style[0]
    c = jax.tree.leaves(per_style[0])[0].shape[-1]
    empty = style_losses.STYLE_LOSSES[name].target(jnp.zeros((1, 1, c)))
    return style_mix.stack(per_style + [empty] * (regions - len(per_style)))


def _run_targets(runs, program: engine.Program, found: dict, regions: int | None) -> dict:
    """Each run's style targets (:func:`_run_target`), stacked over runs (point sets padded)."""
    return {
        name: {
            layer: style_mix.stack([_run_target(r, name, layer, found, regions) for r in runs])
            for layer in program.layers_of(name)
        }
        for name in program.style_losses
    }


def _content_targets(params, program: engine.Program, runs, contents) -> dict:
    """Each run's content features ``[R, h, w, C]`` by layer, computed once per content."""
    if not program.content_layers:  # pure texture synthesis needs no content features
        return {}
    distinct = list(dict.fromkeys(r.content for r in runs))
    feats = targets.content_features(
        params,
        np.stack([contents[c] for c in distinct]),
        layers=program.content_layers,
        pooling=program.pooling,
        dtype=program.dtype,
        convolution=program.convolution,
    )
    index = jnp.asarray([distinct.index(r.content) for r in runs])
    return {name: f[index] for name, f in feats.items()}


def _downsample_mask(mask: np.ndarray, shape: tuple[int, int], factor: int) -> np.ndarray:
    """A mask at the output size, averaged over ``factor``-sized blocks as VGG's pooling does."""
    m = resize(np.asarray(mask, np.float32)[..., None], shape)[..., 0]
    h, w = shape[0] // factor, shape[1] // factor
    return m[: h * factor, : w * factor].reshape(h, factor, w, factor).mean(axis=(1, 3))


def _guided_masks(runs, program: engine.Program, shape, regions: int) -> dict:
    """``[R, K, h, w]`` region masks by style layer for a batch using spatial control: a run
    without masks is one region (a mask of ones); unused regions have zero masks."""
    masks = {}
    for name in program.style_layers:
        factor = downsampling(name)
        hw = (shape[0] // factor, shape[1] // factor)
        per_run = []
        for r in runs:
            if r.masks is None:
                m = [np.ones(hw, np.float32)]
            else:
                m = [_downsample_mask(mask, shape, factor) for mask in r.masks]
            m += [np.zeros(hw, np.float32)] * (regions - len(m))
            per_run.append(np.stack(m))
        masks[name] = jnp.asarray(np.stack(per_run))
    return masks


def _temporal_targets(runs: Sequence[Run], shape: tuple[int, int]):
    """The warped neighbours ``[R, J, H, W, 3]`` (0-255 units) and their reliabilities
    ``[R, J, H, W]``, ``J`` the most any run has (a run with fewer, or none, is padded with
    zero-reliability frames); ``(None, None)`` when no run has any (today's programs)."""
    if all(r.temporal is None for r in runs):
        return None, None
    depth = max(len(r.temporal) for r in runs if r.temporal is not None)
    frames = np.zeros((len(runs), depth, *shape, 3), np.float32)
    reliability = np.zeros((len(runs), depth, *shape), np.float32)
    for i, r in enumerate(runs):
        if r.temporal is None:
            continue
        j = len(r.temporal)
        given = (np.shape(r.temporal), np.shape(r.temporal_reliability))
        if given != ((j, *shape, 3), (j, *shape)):
            raise NstjaxError(
                f"temporal targets {np.shape(r.temporal)} / reliability "
                f"{np.shape(r.temporal_reliability)} do not match the output {shape}"
            )
        frames[i, :j] = np.asarray(r.temporal, np.float32) * 255.0
        reliability[i, :j] = np.asarray(r.temporal_reliability, np.float32)
    return jnp.asarray(frames), jnp.asarray(reliability)


def hyper_of(
    runs: Sequence[Run], optimizer: str, style_losses: tuple[str, ...] = ("gram",)
) -> engine.Hyper:
    """The runs' hyperparameters stacked along the run axis (``style_losses``: the program's)."""

    def column(values, dtype=jnp.float32):
        return jnp.asarray(np.asarray(values), dtype)

    return engine.Hyper(
        content_weight=column([r.content_weight for r in runs]),
        style_weight=column([r.style_weight for r in runs]),
        tv_weight=column([r.tv_weight for r in runs]),
        content_layer_weights=column(
            [layer_weight_vector(r.content_layers, "content-layers") for r in runs]
        ),
        style_layer_weights=column(
            [layer_weight_vector(r.style_layers, "style-layers") for r in runs]
        ),
        learning_rate=column([r.step_size(optimizer) for r in runs]),
        normalize_gradients=jnp.asarray([r.normalize_gradients for r in runs]),
        loss_tolerance=column([r.loss_tolerance for r in runs]),
        grad_tolerance=column([r.grad_tolerance for r in runs]),
        style_loss_weights=column(
            [[r.style_loss_weights().get(n, 0.0) for n in style_losses] for r in runs]
        ).reshape(len(runs), len(style_losses)),
        style_key=jnp.stack([jax.random.key_data(jax.random.key(r.seed)) for r in runs]),
    )


def build(
    params, program: engine.Program, runs: Sequence[Run], contents: Images, styles: Images
) -> Built:
    """The engine's arrays for a batch of runs sharing one output shape.

    Args:
        params: VGG parameters, prepared for ``program.convolution``.
        program: the batch's compiled program (:func:`nstjax.batch.plan.program_for`).
        runs: the batch's runs, padding included.
        contents: content images ``[H, W, 3]`` in [0, 1] at the output size.
        styles: style images in [0, 1], any size (each run scales them by its ``style_scale``).

    Returns:
        The initial pixels, hyperparameters and targets, each with a leading run axis.
    """
    for r in runs:  # before anything compiles
        for s in r.style_blend():
            shape = contents[r.content].shape[:2]
            style_shape = style_image(r, styles[s], contents[r.content]).shape[:2]
            check_patch_sizes(program.style, style_shape, shape)
    found = _style_targets(params, program, runs, contents, styles)
    regions, masks = None, None
    if program.guided:
        shape = contents[runs[0].content].shape[:2]
        regions = max(len(r.masks) if r.masks is not None else 1 for r in runs)
        masks = _guided_masks(runs, program, shape, regions)
    temporal, reliability = _temporal_targets(runs, contents[runs[0].content].shape[:2])
    run_targets = engine.Targets(
        content=_content_targets(params, program, runs, contents),
        style=_run_targets(runs, program, found, regions),
        masks=masks,
        temporal=temporal,
        temporal_mask=reliability,
    )
    mean_rgb = init.mean_colour(params)  # the colour the weights' preprocessing maps to zero
    starts = [initial_image(r, contents[r.content], styles, mean_rgb) for r in runs]
    pixels = np.stack(starts) * 255.0
    hyper = hyper_of(runs, program.optimizer, program.style_losses)
    if temporal is not None:
        hyper = hyper._replace(
            temporal_weight=jnp.asarray([r.temporal_weight for r in runs], jnp.float32)
        )
    return Built(pixels.astype(np.float32), hyper, run_targets)
