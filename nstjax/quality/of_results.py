"""The measures of an executor's results (``Options.quality``): one call per finished batch.

The protocol for a run (docs/quality.md): its final image; its content image at the output's
size; its style image as the caller gave it (the first of a blend), resized so that its long side
is the output's long side, so that runs of different ``style_scale`` are judged against the same
style. A run whose output or reference style has a side under
:data:`nstjax.quality.protocol.MIN_SIDE` px is not measured (None).
"""

from collections.abc import Sequence

import numpy as np

from nstjax.quality.measure import measure
from nstjax.quality.protocol import MIN_SIDE
from nstjax.resample import long_side_shape, resize


def reference_style(style: np.ndarray, output_shape: tuple[int, ...]) -> np.ndarray:
    """The style image a run's output is measured against (see the module docstring)."""
    shape = long_side_shape(style.shape, max(output_shape[:2]))
    return style if tuple(style.shape[:2]) == shape else resize(style, shape)


def measure_results(params, results: Sequence, contents, styles, convolution: str) -> list:
    """Each result's measures as a plain ``{name: float}`` (None for a too small output).

    Args:
        params: VGG parameters prepared for ``convolution``.
        results: :class:`nstjax.execute.Result` of one batch (one output shape).
        contents: the content images the runs index, at the output size.
        styles: the style images the runs index.
        convolution: the kernels ``params`` were prepared for.
    """
    scores: list = [None] * len(results)
    if not results or min(results[0].image.shape[:2]) < MIN_SIDE:
        return scores
    shape = results[0].image.shape
    chosen = {}
    for r in results:
        key = next(iter(r.run.style_blend()))
        if key not in chosen:
            chosen[key] = reference_style(np.asarray(styles[key], np.float32), shape)
    references = [chosen[next(iter(r.run.style_blend()))] for r in results]
    measured = [i for i, s in enumerate(references) if min(s.shape[:2]) >= MIN_SIDE]
    if not measured:
        return scores
    content_images = [np.asarray(contents[results[i].run.content], np.float32) for i in measured]
    content_images = [c if c.shape == shape else resize(c, shape[:2]) for c in content_images]
    values = measure(
        params,
        np.stack([results[i].image for i in measured]),
        np.stack(content_images),
        [references[i] for i in measured],
        convolution=convolution,
    )
    for j, i in enumerate(measured):
        scores[i] = {name: float(v[j]) for name, v in values.items()}
    return scores
