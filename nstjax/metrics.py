"""Image-quality figures for the reproductions: PSNR and SSIM (numpy, images in [0, 1])."""

import numpy as np


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (infinite for identical images)."""
    mse = float(np.mean((np.asarray(image, np.float64) - np.asarray(reference, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def _gaussian_filter(x: np.ndarray, sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    pad = np.pad(x, radius, mode="reflect")
    rows = sum(t * pad[i : i + x.shape[0], :] for i, t in enumerate(taps))
    return sum(t * rows[:, i : i + x.shape[1]] for i, t in enumerate(taps))


def ssim(image: np.ndarray, reference: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01,
    K2 0.03, data range 1), averaged over the image and the colour channels."""
    c1, c2 = 0.01**2, 0.03**2
    a = np.asarray(image, np.float64)
    b = np.asarray(reference, np.float64)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    scores = []
    for ch in range(a.shape[-1]):
        x, y = a[..., ch], b[..., ch]
        mx, my = _gaussian_filter(x), _gaussian_filter(y)
        sxx = _gaussian_filter(x * x) - mx * mx
        syy = _gaussian_filter(y * y) - my * my
        sxy = _gaussian_filter(x * y) - mx * my
        num = (2 * mx * my + c1) * (2 * sxy + c2)
        den = (mx * mx + my * my + c1) * (sxx + syy + c2)
        scores.append(np.mean(num / den))
    return float(np.mean(scores))
