"""A float64 numpy transcription of the quality measures, the oracle of tests/test_quality_*.py.

Written from the definitions (Wang et al.'s official ``quality_criteria.py`` and docs/quality.md),
not from nstjax.quality: its own VGG forward pass (SAME 3x3 convolutions, ReLU, 2x2 average
pooling), its own input conventions, numpy's histogram, a full cosine matrix for the patch match.
"""

import numpy as np

BLOCK_SIZES = (2, 2, 4, 4, 4)
OFFICIAL_MEAN = np.array([103.939, 116.779, 123.680])  # subtracted from RGB, as the official code
CAFFE_MEAN_RGB = np.array([123.68, 116.779, 103.939])


def vgg_features(params, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every conv layer's rectified output for one network input ``[H, W, 3]`` (float64)."""
    convs, out = params["params"], {}
    for block, count in enumerate(BLOCK_SIZES, start=1):
        if block > 1:
            h, w, c = x.shape
            x = x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3))
        for i in range(1, count + 1):
            name = f"conv{block}_{i}"
            kernel = np.asarray(convs[name]["kernel"], np.float64)
            bias = np.asarray(convs[name]["bias"], np.float64)
            h, w, _ = x.shape
            pad = np.pad(x, ((1, 1), (1, 1), (0, 0)))
            y = sum(
                pad[di : di + h, dj : dj + w] @ kernel[di, dj] for di in range(3) for dj in range(3)
            )
            x = out[name] = np.maximum(y + bias, 0.0)
    return out


def official_features(params, image):
    """The official code's network input: 8-bit RGB minus the BGR mean, channels unswapped."""
    q = np.rint(np.clip(image, 0, 1) * 255.0)
    return vgg_features(params, q - OFFICIAL_MEAN)


def caffe_features(params, image):
    """The weights' own convention: RGB in [0, 1] -> x255 - ImageNet mean -> BGR."""
    return vgg_features(params, (np.asarray(image, np.float64) * 255.0 - CAFFE_MEAN_RGB)[..., ::-1])


def cosine(a, b):
    a, b = np.ravel(a), np.ravel(b)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def color_similarity(output, style):
    """matplotlib-hist style: 128 bins over each 8-bit channel's own range, cosine of counts."""
    total = 0.0
    for c in range(3):
        n_style, _ = np.histogram(np.rint(style[..., c] * 255).ravel(), bins=128)
        n_out, _ = np.histogram(np.rint(output[..., c] * 255).ravel(), bins=128)
        total += cosine(n_style.astype(float), n_out.astype(float))
    return total / 3


def patch_rows(f):
    h, w, c = f.shape
    rows = [f[i : i + 3, j : j + 3].ravel() for i in range(h - 2) for j in range(w - 2)]
    rows = np.array(rows)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def match(queries, targets, margin):
    """argmax, max and how many rows have a runner-up within ``margin`` of the best (rows whose
    argmax float32 rounding may change)."""
    sims = queries @ targets.T
    best = sims.max(axis=1)
    runner_up = np.sort(sims, axis=1)[:, -2] if sims.shape[1] > 1 else best - 1
    return sims.argmax(axis=1), best, int(np.sum(best - runner_up < margin))


def local_patterns(out_f, style_f, margin=1e-3):
    """LP1 and LP2 averaged over conv3_1, conv4_1, with LP2's bounds from near-tie rows."""
    lp1, lp2, low, high = [], [], [], []
    for name in ("conv3_1", "conv4_1"):
        p, t = patch_rows(out_f[name]), patch_rows(style_f[name])
        index, best, ambiguous = match(p, t, margin)
        s_index, _, s_ambiguous = match(t, t, margin)
        x, s = len(set(index)), len(set(s_index))
        lp1.append(best.mean())
        lp2.append(x / s)
        low.append((x - ambiguous) / (s + s_ambiguous))
        high.append((x + ambiguous) / max(s - s_ambiguous, 1))
    return float(np.mean(lp1)), float(np.mean(lp2)), float(np.mean(low)), float(np.mean(high))


def wang(params, output, content, style):
    """CF, GE, LP1, LP2 (+ LP2 bounds) and the color similarity, the official protocol."""
    out_f = official_features(params, output)
    content_f = official_features(params, content)
    style_f = official_features(params, style)
    cf = np.mean([cosine(out_f[n], content_f[n]) for n in ("conv4_1", "conv5_1")])
    raw = lambda f: f.reshape(-1, f.shape[-1]).T @ f.reshape(-1, f.shape[-1])
    layers = ("conv2_1", "conv3_1", "conv4_1", "conv5_1")
    grams = np.mean([cosine(raw(out_f[n]), raw(style_f[n])) for n in layers])
    colors = color_similarity(output, style)
    lp1, lp2, lp2_low, lp2_high = local_patterns(out_f, style_f)
    return {
        "content_fidelity": cf,
        "global_effects": 0.5 * grams + 0.5 * colors,
        "color_similarity": colors,
        "local_patterns1": lp1,
        "local_patterns2": lp2,
        "local_patterns": 0.5 * lp1 + 0.5 * lp2,
        "lp2_bounds": (lp2_low, lp2_high),
    }


def sliced_layer(out_f, style_f, directions):
    a = np.sort(out_f.reshape(-1, out_f.shape[-1]) @ directions, axis=0)
    b = np.sort(style_f.reshape(-1, style_f.shape[-1]) @ directions, axis=0)
    n, m = len(a), len(b)
    # the style's quantile function at the output's mid-quantiles, linear between sorted values
    position = np.clip((np.arange(n) + 0.5) / n * m - 0.5, 0, m - 1)
    quantiles = np.stack(
        [np.interp(position, np.arange(m), b[:, k]) for k in range(b.shape[1])], axis=1
    )
    return np.sqrt(np.mean((a - quantiles) ** 2))


def judges(params, output, content, style, directions):
    """style_distance, content_distance, sliced_wasserstein (weights' own convention), PSNR."""
    out_f, content_f, style_f = (caffe_features(params, x) for x in (output, content, style))
    layers = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")

    def gram(f):
        flat = f.reshape(-1, f.shape[-1])
        return flat.T @ flat / len(flat)

    mse = np.mean((np.asarray(output, np.float64) - content) ** 2)
    return {
        "style_distance": np.mean(
            [np.mean((gram(out_f[n]) - gram(style_f[n])) ** 2) for n in layers]
        ),
        "content_distance": np.mean((out_f["conv4_2"] - content_f["conv4_2"]) ** 2),
        "sliced_wasserstein": np.mean(
            [sliced_layer(out_f[n], style_f[n], directions[n]) for n in layers]
        ),
        "psnr": 10 * np.log10(1.0 / mse),
    }


def ssim(a, b):
    """SSIM (Wang et al. 2004), 11-tap Gaussian (sigma 1.5), VALID windows, data range 1."""
    taps = np.exp(-0.5 * ((np.arange(11) - 5) / 1.5) ** 2)
    taps /= taps.sum()

    def blur(x):  # separable VALID filter over H then W of [H, W, C]
        rows = sum(t * x[i : i + x.shape[0] - 10] for i, t in enumerate(taps))
        return sum(t * rows[:, i : i + x.shape[1] - 10] for i, t in enumerate(taps))

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    c1, c2 = 0.01**2, 0.03**2
    ma, mb = blur(a), blur(b)
    saa, sbb, sab = blur(a * a) - ma**2, blur(b * b) - mb**2, blur(a * b) - ma * mb
    return np.mean((2 * ma * mb + c1) * (2 * sab + c2) / ((ma**2 + mb**2 + c1) * (saa + sbb + c2)))
