"""Scoring: the measures of a batch of outputs, compiled once per shape, vmapped over runs.

The style-side representations (Grams, normalised patches and their self-match count, color
histograms, sorted projections) are computed once per distinct style array
(:func:`style_side`); :func:`score_batch` then scores every output of that style with one
``jax.vmap`` of :func:`score_one`, a pure function of one output, its content and the style side.
"""

import functools

import jax
import jax.numpy as jnp

from nstjax import vgg
from nstjax.quality import histogram, judges, local_patterns, sliced, wang
from nstjax.quality.protocol import POOLING, wang_input, wang_pixels

_WANG = {"content_fidelity", "global_effects", "local_patterns", "local_patterns1"}
_WANG |= {"local_patterns2", "color_similarity"}
_LOCAL = {"local_patterns", "local_patterns1", "local_patterns2"}
_COLOR = {"global_effects", "color_similarity"}


def _style_wang_layers(names) -> tuple[str, ...]:
    layers = wang.GLOBAL_LAYERS if "global_effects" in names else ()
    return layers + (local_patterns.LOCAL_LAYERS if _LOCAL & set(names) else ())


def _style_judge_layers(names) -> tuple[str, ...]:
    layers = judges.STYLE_LAYERS if "style_distance" in names else ()
    return layers + (sliced.LAYERS if "sliced_wasserstein" in names else ())


def _views(params, image, wang_layers, judge_layers, protocol, convolution):
    """The image's features for Wang et al.'s measures and for the judges (one forward pass when
    the protocol feeds both the same input)."""
    extract = functools.partial(vgg.features, pooling=POOLING, convolution=convolution)
    if protocol == "corrected" and wang_layers and judge_layers:
        both = extract(params, image, {*wang_layers, *judge_layers})
        return both, both
    wang_features = (
        extract(params, wang_input(params, image, protocol), wang_layers) if (wang_layers) else {}
    )
    judge_features = extract(params, image, judge_layers) if judge_layers else {}
    return wang_features, judge_features


@functools.partial(jax.jit, static_argnames=("names", "protocol", "convolution"))
def style_side(params, style: jax.Array, *, names, protocol, convolution) -> dict:
    """Everything the measures ``names`` need of one ``[h, w, 3]`` style image."""
    wang_layers, judge_layers = _style_wang_layers(names), _style_judge_layers(names)
    wang_features, judge_features = _views(
        params, style, wang_layers, judge_layers, protocol, convolution
    )
    side = {}
    if "global_effects" in names:
        side["raw_grams"] = {n: wang.raw_gram(wang_features[n]) for n in wang.GLOBAL_LAYERS}
    if _LOCAL & set(names):
        side["patches"] = {
            n: local_patterns.style_side(wang_features[n]) for n in local_patterns.LOCAL_LAYERS
        }
    if _COLOR & set(names):
        side["histograms"] = histogram.channel_histograms(wang_pixels(style, protocol), protocol)
    if "style_distance" in names:
        side["grams"] = {n: judges.gram(judge_features[n]) for n in judges.STYLE_LAYERS}
    if "sliced_wasserstein" in names:
        side["sorted"] = {n: sliced.sorted_projections(judge_features[n], n) for n in sliced.LAYERS}
    return side


def _output_layers(names) -> tuple[tuple[str, ...], tuple[str, ...]]:
    wang_layers = _style_wang_layers(names)
    if "content_fidelity" in names:
        wang_layers += wang.CONTENT_LAYERS
    judge_layers = _style_judge_layers(names)
    if "content_distance" in names:
        judge_layers += (judges.CONTENT_LAYER,)
    return tuple(dict.fromkeys(wang_layers)), tuple(dict.fromkeys(judge_layers))


def _content_views(params, content, names, protocol, convolution):
    wang_layers = wang.CONTENT_LAYERS if "content_fidelity" in names else ()
    judge_layers = (judges.CONTENT_LAYER,) if "content_distance" in names else ()
    return _views(params, content, wang_layers, judge_layers, protocol, convolution)


def score_one(
    params, output: jax.Array, content: jax.Array, side: dict, *, names, protocol, convolution
) -> dict[str, jax.Array]:
    """The measures ``names`` of one ``[H, W, 3]`` output, its content (same shape) and the
    style side of its style (:func:`style_side`)."""
    wang_out, judge_out = _views(params, output, *_output_layers(names), protocol, convolution)
    wang_content, judge_content = _content_views(params, content, names, protocol, convolution)
    values = {}
    if "content_fidelity" in names:
        values["content_fidelity"] = wang.content_fidelity(wang_out, wang_content)
    if _COLOR & set(names):
        output_histograms = histogram.channel_histograms(wang_pixels(output, protocol), protocol)
        values["color_similarity"] = histogram.color_similarity(
            output_histograms, side["histograms"]
        )
    if "global_effects" in names:
        grams = wang.gram_similarity(wang_out, side["raw_grams"])
        values["global_effects"] = wang.global_effects(grams, values["color_similarity"])
    if _LOCAL & set(names):
        values |= local_patterns.local_patterns(wang_out, side["patches"])
    if "style_distance" in names:
        values["style_distance"] = judges.style_distance(judge_out, side["grams"])
    if "content_distance" in names:
        values["content_distance"] = judges.content_distance(judge_out, judge_content)
    if "sliced_wasserstein" in names:
        values["sliced_wasserstein"] = sliced.sliced_wasserstein(judge_out, side["sorted"])
    if "ssim" in names:
        values["ssim"] = judges.ssim(output, content)
    if "psnr" in names:
        values["psnr"] = judges.psnr(output, content)
    return {n: values[n].astype(jnp.float32) for n in names}


@functools.partial(jax.jit, static_argnames=("names", "protocol", "convolution"))
def score_batch(
    params, outputs: jax.Array, contents: jax.Array, side: dict, *, names, protocol, convolution
) -> dict[str, jax.Array]:
    """:func:`score_one` vmapped over ``[N, H, W, 3]`` outputs and contents of one style."""
    one = functools.partial(score_one, names=names, protocol=protocol, convolution=convolution)
    return jax.vmap(one, in_axes=(None, 0, 0, None))(params, outputs, contents, side)
