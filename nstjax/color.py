"""Colour controls of Gatys et al. 2017, on host-side numpy images ``[H, W, 3]`` in [0, 1].

- Luminance-only transfer: keep the stylised image's luminance and the content's chrominance
  (what neural-style's ``-original_colors 1`` does), in YCbCr (ITU-R BT.601) or YIQ.
- Colour-histogram matching: a linear map of the style image's colours so that their mean and
  covariance equal the content's, applied before the transfer.
"""

import numpy as np

# BT.601 full-range RGB -> YCbCr, offsets dropped (they cancel in the round trip).
_YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float64
)
_YIQ = np.array(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
    np.float64,
)
SPACES = {"ycbcr": _YCBCR, "yiq": _YIQ}
COLOR_MODES = ("style", "luminance", "histogram")
"""``style``: the style's colours (plain transfer); ``luminance``: keep the content's colours by
luminance-only transfer; ``histogram``: match the style's colour histogram to the content first."""


def to_luma_chroma(image: np.ndarray, space: str = "ycbcr") -> np.ndarray:
    """RGB ``[..., 3]`` to (luma, chroma, chroma) in the given space."""
    return np.asarray(image, np.float64) @ SPACES[space].T


def from_luma_chroma(image: np.ndarray, space: str = "ycbcr") -> np.ndarray:
    """Inverse of :func:`to_luma_chroma`."""
    return np.asarray(image, np.float64) @ np.linalg.inv(SPACES[space]).T


def luminance_transfer(
    stylised: np.ndarray, content: np.ndarray, space: str = "ycbcr"
) -> np.ndarray:
    """The stylised image's luminance with the content's chrominance, clipped to [0, 1]."""
    ours = to_luma_chroma(stylised, space)
    theirs = to_luma_chroma(content, space)
    combined = np.concatenate([ours[..., :1], theirs[..., 1:]], axis=-1)
    return np.clip(from_luma_chroma(combined, space), 0.0, 1.0).astype(np.float32)


def _sqrtm(cov: np.ndarray, inverse: bool = False) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    values = np.maximum(values, 1e-8)
    power = -0.5 if inverse else 0.5
    return (vectors * values**power) @ vectors.T


def match_histogram(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style image recoloured so its colour mean and covariance equal the content's.

    ``x' = C_c^{1/2} C_s^{-1/2} (x - mu_s) + mu_c`` with symmetric matrix square roots (the
    "image analogies" colour transfer used by Gatys et al. 2017). Not clipped: clipping would
    change the statistics being matched; values stay close to [0, 1] for natural images.
    """
    s = np.asarray(style, np.float64).reshape(-1, 3)
    c = np.asarray(content, np.float64).reshape(-1, 3)
    mu_s, mu_c = s.mean(0), c.mean(0)
    transform = _sqrtm(np.cov(c, rowvar=False)) @ _sqrtm(np.cov(s, rowvar=False), inverse=True)
    matched = (s - mu_s) @ transform.T + mu_c
    return matched.reshape(np.shape(style)).astype(np.float32)
