"""The builder: a batch's runs and images -> the engine's arrays (initial pixels, Hyper, Targets).

Content features are computed once per distinct content image and style Grams once per distinct
style image as a run sees it (its scale, and for histogram matching the content it is matched
to); each run's targets are then gathered or blended from those. Everything per run gets a
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


def _style_grams(params, program: engine.Program, runs, contents, styles) -> dict:
    """Grams by layer for every distinct style image as the runs see it."""
    if "gram" not in program.style_losses:
        return {}
    if not program.style_layers:  # a pure content reconstruction needs no Grams
        return _per_style_image(runs, contents, styles, lambda image: {})
    return _per_style_image(
        runs,
        contents,
        styles,
        lambda image: targets.style_grams(
            params,
            image,
            layers=program.style_layers,
            pooling=program.pooling,
            dtype=program.dtype,
            convolution=program.convolution,
        ),
    )


def _family_of(program: engine.Program) -> tuple[str, ...]:
    return tuple(n for n in program.style_losses if n != "gram")


def check_patch_sizes(program: engine.Program, style: tuple, output: tuple) -> None:
    """The MRF loss needs at least one 3x3 patch at each of its layers, in both images (``style``
    and ``output`` are ``(h, w)``; ``program`` an ``engine.Program`` or anything with its
    ``style_losses`` and ``layers_of``)."""
    if "mrf" not in program.style_losses:
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


def _style_family(params, program: engine.Program, runs, contents, styles) -> dict:
    """The other style losses' targets (loss -> layer -> representation) for every distinct style
    image as the runs see it."""
    names = _family_of(program)
    if not names or not program.style_layers:
        return {}
    pairs = tuple((n, program.layers_of(n)) for n in names)
    return _per_style_image(
        runs,
        contents,
        styles,
        lambda image: targets.style_representations(
            params,
            image,
            pooling=program.pooling,
            dtype=program.dtype,
            convolution=program.convolution,
            style_losses=pairs,
        ),
    )


def _family_targets(runs, program: engine.Program, found: dict, regions: int | None) -> dict:
    """Each run's targets of the other style losses, stacked over runs (point sets padded).

    Without guidance a run's target is its (single) style's; a blend, allowed only where these
    losses have weight 0, takes its first style's. With ``regions``, ``[K, ...]`` per run: one
    target per style of a run with masks, its style's for a run without; unused regions get the
    target of zero features, which scores 0 under a zero mask.
    """
    out = {}
    for name in _family_of(program):
        out[name] = {}
        for layer in program.layers_of(name):
            per_run = []
            for r in runs:
                blend = list(r.style_blend())
                chosen = blend if regions and r.masks is not None else blend[:1]
                reps = [found[_style_key(r, s)][name][layer] for s in chosen]
                if regions:
                    c = jax.tree.leaves(reps[0])[0].shape[-1]
                    empty = style_losses.STYLE_LOSSES[name].target(jnp.zeros((1, 1, c)))
                    reps = style_mix.stack(reps + [empty] * (regions - len(reps)))
                else:
                    reps = reps[0]
                per_run.append(reps)
            out[name][layer] = style_mix.stack(per_run)
    return out


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
            if r.masks is None:
                m = [np.ones(hw, np.float32)]
            else:
                m = [_downsample_mask(mask, shape, factor) for mask in r.masks]
            m += [np.zeros(hw, np.float32)] * (regions - len(m))
            per_run_masks.append(np.stack(m))
            if grams:  # none when the program has no Gram loss
                blend = r.style_blend()
                zero = jnp.zeros_like(grams[_style_key(r, next(iter(blend)))][name])
                if r.masks is None:
                    g = [sum(w * grams[_style_key(r, s)][name] for s, w in blend.items())]
                else:
                    g = [grams[_style_key(r, s)][name] for s in blend]
                per_run_grams.append(jnp.stack(g + [zero] * (regions - len(g))))
        if grams:
            style[name] = jnp.stack(per_run_grams)
        masks[name] = jnp.asarray(np.stack(per_run_masks))
    return style, masks


def _blended_targets(runs, program, grams) -> dict:
    if not grams:  # the program has no Gram loss
        return {}
    return {
        name: jnp.stack(
            [
                sum(w * grams[_style_key(r, s)][name] for s, w in r.style_blend().items())
                for r in runs
            ]
        )
        for name in program.style_layers
    }


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
            check_patch_sizes(program, style_shape, shape)
    grams = _style_grams(params, program, runs, contents, styles)
    found = _style_family(params, program, runs, contents, styles)
    regions = None
    if program.guided:
        shape = contents[runs[0].content].shape[:2]
        regions = max(len(r.masks) if r.masks is not None else 1 for r in runs)
        style_targets, masks = _guided_targets(runs, program, grams, shape)
    else:
        style_targets, masks = _blended_targets(runs, program, grams), None
    temporal, reliability = _temporal_targets(runs, contents[runs[0].content].shape[:2])
    run_targets = engine.Targets(
        content=_content_targets(params, program, runs, contents),
        style=style_targets,
        masks=masks,
        family=_family_targets(runs, program, found, regions),
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
