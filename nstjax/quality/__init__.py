"""Quality measures of a stylised image, independent of the loss that made it.

Wang et al. 2021's content fidelity, global effects and local patterns (as their official code
computes them, :mod:`nstjax.quality.protocol`), and the judges papers report: a Gram (style)
distance, a content distance, a sliced Wasserstein distance, SSIM and PSNR. Every measure is a
pure function of one output and its content and style images, vmapped over runs and compiled;
:data:`MEASURES` lists them with their direction. See docs/quality.md.
"""

from nstjax.quality.measure import measure, measure_one
from nstjax.quality.names import HIGHER_IS_BETTER, MEASURE_NAMES, MEASURES, Measure, check_names
from nstjax.quality.protocol import DEFAULT_PROTOCOL, PROTOCOLS

__all__ = [
    "DEFAULT_PROTOCOL",
    "HIGHER_IS_BETTER",
    "MEASURES",
    "MEASURE_NAMES",
    "PROTOCOLS",
    "Measure",
    "check_names",
    "measure",
    "measure_one",
]
