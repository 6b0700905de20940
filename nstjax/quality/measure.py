"""The public entry points: :func:`measure` (a batch of outputs) and :func:`measure_one`."""

import hashlib
from collections.abc import Iterable, Sequence

import jax.numpy as jnp
import numpy as np

from nstjax.errors import NstjaxError
from nstjax.quality.names import check_names
from nstjax.quality.protocol import DEFAULT_PROTOCOL, MIN_SIDE, check_protocol
from nstjax.quality.score import score_batch, style_side


def _check_image(array: np.ndarray, what: str) -> None:
    if array.ndim != 3 or array.shape[-1] != 3:
        raise NstjaxError(f"{what}: expected an [H, W, 3] RGB image, got shape {array.shape}")
    if min(array.shape[:2]) < MIN_SIDE:
        raise NstjaxError(
            f"{what}: {array.shape[0]}x{array.shape[1]} is too small to measure; the measures "
            f"need at least {MIN_SIDE} px a side"
        )


def _checked(outputs, contents, styles) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    outputs = np.asarray(outputs, np.float32)
    contents = np.asarray(contents, np.float32)
    if outputs.ndim != 4:
        raise NstjaxError(f"outputs: expected [N, H, W, 3] images, got shape {outputs.shape}")
    if contents.shape != outputs.shape:
        raise NstjaxError(
            f"contents: shape {contents.shape} differs from the outputs' {outputs.shape} "
            "(resize each content to its output's size first)"
        )
    styles = [np.asarray(s, np.float32) for s in styles]
    if len(styles) != len(outputs):
        raise NstjaxError(f"styles: {len(styles)} style image(s) for {len(outputs)} output(s)")
    if len(outputs):
        _check_image(outputs[0], "outputs")
    for i, style in enumerate(styles):
        _check_image(style, f"styles[{i}]")
    return outputs, contents, styles


def _by_style(styles: Sequence[np.ndarray]) -> dict[tuple, list[int]]:
    """Indices of the outputs of each distinct style array (equal shape and bytes)."""
    groups: dict[tuple, list[int]] = {}
    for i, style in enumerate(styles):
        key = (style.shape, hashlib.sha1(style.tobytes()).hexdigest())
        groups.setdefault(key, []).append(i)
    return groups


def measure(
    params,
    outputs,
    contents,
    styles: Sequence,
    *,
    names: Iterable[str] | str | None = None,
    convolution: str = "xla",
    protocol: str = DEFAULT_PROTOCOL,
) -> dict[str, np.ndarray]:
    """The quality measures of a batch of outputs (:data:`nstjax.quality.MEASURES`).

    Args:
        params: VGG-19 parameters (:func:`nstjax.vgg.load_params`; prepared for ``convolution``
            when it is not ``"xla"``).
        outputs: ``[N, H, W, 3]`` RGB in [0, 1].
        contents: ``[N, H, W, 3]``: each output's content image, already at the output's size.
        styles: ``N`` style images ``[h, w, 3]`` of any sizes (kept at their own size, as the
            official protocol keeps them); the style side is computed once per distinct array.
        names: the measures to compute (default: all).
        convolution: the VGG convolution kernels (``nstjax.kernels.CONVOLUTIONS``).
        protocol: ``"official"`` (Wang et al.'s code, quirks included) or ``"corrected"``
            (:mod:`nstjax.quality.protocol`).

    Returns:
        Each requested measure's name -> ``[N]`` float64 values.

    Raises:
        NstjaxError: an unknown measure or protocol, mismatched shapes, an image under 24 px.
    """
    names = check_names(names)
    protocol = check_protocol(protocol)
    outputs, contents, styles = _checked(outputs, contents, styles)
    values = {name: np.zeros(len(outputs), np.float64) for name in names}
    static = {"names": names, "protocol": protocol, "convolution": convolution}
    for indices in _by_style(styles).values():
        side = style_side(params, jnp.asarray(styles[indices[0]]), **static)
        scores = score_batch(
            params, jnp.asarray(outputs[indices]), jnp.asarray(contents[indices]), side, **static
        )
        for name in names:
            values[name][indices] = np.asarray(scores[name], np.float64)
    return values


def measure_one(
    params,
    output,
    content,
    style,
    *,
    names: Iterable[str] | str | None = None,
    convolution: str = "xla",
    protocol: str = DEFAULT_PROTOCOL,
) -> dict[str, float]:
    """:func:`measure` of one ``[H, W, 3]`` output, its content (same shape) and its style.

    Returns:
        Each requested measure's name -> its value as a Python float.
    """
    values = measure(
        params,
        np.asarray(output)[None],
        np.asarray(content)[None],
        [style],
        names=names,
        convolution=convolution,
        protocol=protocol,
    )
    return {name: float(v[0]) for name, v in values.items()}
