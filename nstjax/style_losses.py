"""A family of style losses, each two pure functions of ONE image's features at ONE layer.

As in pystiche's comparison losses, a loss is split into ``target(features, mask)`` (the style
image's representation, computed once per style image and layer) and
``score(features, representation, key, mask)`` (the output's distance to it, a float32 scalar).
Representations are pytrees of arrays whose shapes depend only on the layer's shape, so they
stack over runs (point sets carry a ``valid`` flag and :func:`stack` pads them to a common count).
Batch with ``jax.vmap``; features may be bfloat16, everything accumulates in float32.

Every score is a mean, so none depends on the image size (``F`` is ``[n = h w, C]``):

- ``gram``: ``mean((G - A)^2)`` with ``G = F^T F / (n C)`` (:mod:`nstjax.losses`, today's loss).
- ``mean_std``: ``mean_c (mu_c - mu'_c)^2 + mean_c (sigma_c - sigma'_c)^2``, the per-channel mean
  and standard deviation (Li et al. 2017; AdaIN's statistics), ``sigma = sqrt(var + STD_EPS)``.
- ``gaussian_w2``: ``W2^2 / C`` between Gaussians fitted to the features, ``W2^2 = |mu - mu'|^2 +
  tr(S + S' - 2 (S'^1/2 S S'^1/2)^1/2)`` (population covariances; square roots by ``eigh``).
- ``sliced_wasserstein``: Heitz et al. 2021: ``mean`` over output positions and directions of the
  squared difference of the sorted projections, the style's resampled to the output's count
  (rank ``i`` of ``n`` takes the style's rank ``floor((i + 1/2) m / n)`` of ``m``: their
  repetition when ``n = k m``), on ``num_directions`` random unit directions drawn from ``key``.
- ``histogram``: Risser et al. 2017: ``mean((F - stop_gradient(R(F)))^2)``, ``R`` the exact
  per-channel histogram matching (the output's rank ``i`` of ``n`` mapped to the style's quantile
  at ``(i + 1/2) / n``, linearly interpolated in a table of ``HISTOGRAM_QUANTILES`` midpoint
  quantiles).
- ``mrf``: Li & Wand 2016: 3x3 patches, each output patch matched to the style patch of highest
  normalised cross-correlation (argmax, no gradient through the matching), ``mean`` over patches
  and entries of the squared difference. Matching runs over chunks of ``MRF_CHUNK`` output
  patches, so the similarities take ``MRF_CHUNK * m`` floats instead of ``n m``. At 512 px
  (output and style), XLA:CPU's temporaries for one layer's value and gradient are 419 MB at
  conv3_1 (15876 patches of 2304 floats: 146 MB each for the output's patches, their matches and
  their gradient; unchunked 1101 MB) and 203 MB at conv4_1 (3844 patches of 4608 floats), plus
  the target's patches (146 MB and 71 MB per run); ``compiled.memory_analysis()``. The matching
  costs ``2 n m 9C`` FLOPs: use it at conv3_1/conv4_1 as Li & Wand do (at conv1_1, 128 px is
  already ~145 GFLOP per step).

The scales are comparable: on the real VGG-19 at 128 px (style *The Starry Night*, default
layers conv1_1 ... conv5_1 with equal weights), the astronaut photo scores 0.23, 0.48, 0.19,
0.28 and 0.87 times its Gram loss under mean_std, gaussian_w2, sliced_wasserstein, histogram
and mrf (white noise: 0.27, 0.38, 0.26, 0.30, 0.39), so the Gram loss's style weights carry
over within a factor of about 5. (Per layer they differ more: conv4_1 dominates the Gram loss.)

Guided masks (``[h, w]`` weights ``mask``; moments weighted by ``mask^2``, as the guided Gram)
are supported by ``gram``, ``mean_std`` and ``gaussian_w2``. Only ``gram`` blends the targets of
several style images (the weighted mean of their Grams, Gatys et al. 2017); the others take one.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from nstjax import sorting
from nstjax.losses import Product, gram, style_layer_loss

STD_EPS = 1e-5
"""Added to the variance before the square root (AdaIN's epsilon): a defined gradient at 0."""
W2_EIG_RTOL = 1e-6
"""Eigenvalues of ``S'^1/2 S S'^1/2`` below this fraction of the largest are clipped there in the
gradient of the trace of its square root (``1/(2 sqrt(lambda))``), so the gradient stays finite."""
SLICED_DIRECTIONS: int | None = None
"""Random directions per step and layer; ``None``: as many as channels (Heitz et al.'s code)."""
HISTOGRAM_QUANTILES = 256
"""Quantiles per channel in a histogram target (Risser et al. use 256-bin histograms)."""
MRF_PATCH = 3
MRF_CHUNK = 256
"""Output patches matched at once: the similarity block is ``[MRF_CHUNK, style patches]``."""

Representation = Any


class StyleLoss(NamedTuple):
    """One loss of the family: its name, its two pure functions and what it accepts.

    Attributes:
        name: the name runs give in ``style_loss``.
        target: ``target(features, mask=None)``, the style image's representation.
        score: ``score(features, target, key, mask=None)``, a float32 scalar.
        supports_masks: accepts ``mask`` (guided transfer).
        needs_key: ``score`` draws random numbers from ``key``.
        blend: ``blend(targets, weights)``, the target of a blend of several style images from
            theirs; ``None``: the loss takes one style image.
        takes_product: ``target`` and ``score`` take ``product=``, the ``F^T F`` kernel that goes
            with the program's convolution (:func:`nstjax.kernels.gram_product`).
    """

    name: str
    target: Callable[..., Representation]
    score: Callable[..., jax.Array]
    supports_masks: bool
    needs_key: bool
    blend: Callable[[list, list], Representation] | None = None
    takes_product: bool = False


def _flat(features: jax.Array) -> jax.Array:
    h, w, c = features.shape
    return features.astype(jnp.float32).reshape(h * w, c)


def _weights(features: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Per-position weights ``[n, 1]`` summing to 1: uniform, or ``mask^2`` normalised."""
    h, w, _ = features.shape
    if mask is None:
        return jnp.full((h * w, 1), 1.0 / max(h * w, 1), jnp.float32)
    m = mask.astype(jnp.float32).reshape(h * w, 1)
    m = m * m
    mass = jnp.sum(m)
    return m / jnp.where(mass > 0, mass, 1.0)  # an empty region has zero statistics


def _mean_cov(features, mask):
    f = _flat(features)
    p = _weights(features, mask)
    mean = jnp.sum(p * f, axis=0)
    centred = f - mean
    return mean, (p * centred).T @ centred


def _mse(a, b):
    d = a - b
    return jnp.mean(d * d)


# ---------------------------------------------------------------------------------- gram


def _gram(features: jax.Array, mask: jax.Array | None, product: Product | None) -> jax.Array:
    return gram(features, mask) if product is None else gram(features, mask, product=product)


def gram_target(
    features: jax.Array, mask: jax.Array | None = None, *, product: Product | None = None
) -> jax.Array:
    """The normalised Gram ``[C, C]`` (:func:`nstjax.losses.gram`; ``product``: its kernel)."""
    return _gram(features, mask, product)


def gram_score(features, target, key=None, mask=None, *, product: Product | None = None):
    """``mean((gram(F) - A)^2)``."""
    return style_layer_loss(_gram(features, mask, product), target)


def gram_blend(targets: list[jax.Array], weights: list[float]) -> jax.Array:
    """``sum_s w_s A_s``: a blend's target is the weighted sum of its styles' Grams (the
    weights, :meth:`nstjax.run.Run.style_blend`'s, sum to 1)."""
    return sum(w * t for t, w in zip(targets, weights))


# ------------------------------------------------------------------------------ mean_std


def mean_std_target(features: jax.Array, mask: jax.Array | None = None) -> dict:
    """Per-channel ``{"mean": [C], "std": [C]}`` (``std = sqrt(var + STD_EPS)``)."""
    f = _flat(features)
    p = _weights(features, mask)
    mean = jnp.sum(p * f, axis=0)
    var = jnp.sum(p * (f - mean) ** 2, axis=0)
    return {"mean": mean, "std": jnp.sqrt(var + STD_EPS)}


def mean_std_score(features, target, key=None, mask=None) -> jax.Array:
    """``mean_c (mu - mu')^2 + mean_c (sigma - sigma')^2``."""
    stats = mean_std_target(features, mask)
    return _mse(stats["mean"], target["mean"]) + _mse(stats["std"], target["std"])


# --------------------------------------------------------------------------- gaussian_w2


def _psd_sqrt(matrix: jax.Array) -> jax.Array:
    w, v = jnp.linalg.eigh(matrix)
    return (v * jnp.sqrt(jnp.maximum(w, 0.0))) @ v.T


@jax.custom_vjp
def trace_sqrt(matrix: jax.Array) -> jax.Array:
    """``tr(M^1/2)`` of a symmetric PSD matrix (negative rounding eigenvalues count as 0); its
    gradient ``M^-1/2 / 2`` uses eigenvalues clipped at ``W2_EIG_RTOL`` times the largest."""
    return jnp.sum(jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(matrix), 0.0)))


def _trace_sqrt_fwd(matrix):
    w, v = jnp.linalg.eigh(matrix)
    return jnp.sum(jnp.sqrt(jnp.maximum(w, 0.0))), (w, v)


def _trace_sqrt_bwd(residuals, g):
    w, v = residuals
    floor = jnp.maximum(jnp.max(w), 1e-30) * W2_EIG_RTOL
    inv_sqrt = 0.5 / jnp.sqrt(jnp.maximum(w, floor))
    return ((g * v * inv_sqrt) @ v.T,)


trace_sqrt.defvjp(_trace_sqrt_fwd, _trace_sqrt_bwd)


def gaussian_w2_target(features: jax.Array, mask: jax.Array | None = None) -> dict:
    """``{"mean": [C], "cov": [C, C], "cov_sqrt": [C, C]}`` of the fitted Gaussian."""
    mean, cov = _mean_cov(features, mask)
    return {"mean": mean, "cov": cov, "cov_sqrt": _psd_sqrt(cov)}


def gaussian_w2_score(features, target, key=None, mask=None) -> jax.Array:
    """``W2^2 / C`` between the output's Gaussian and the target's."""
    mean, cov = _mean_cov(features, mask)
    root = target["cov_sqrt"]
    cross = trace_sqrt(root @ cov @ root)
    d = mean - target["mean"]
    w2 = jnp.sum(d * d) + jnp.trace(cov) + jnp.trace(target["cov"]) - 2.0 * cross
    return w2 / features.shape[-1]


# -------------------------------------------------------------------- sliced_wasserstein


def _resample_sorted(sorted_values: jax.Array, count: jax.Array, n: int) -> jax.Array:
    """Columns ``floor((i + 1/2) count / n)``, ``i < n``, of the first ``count`` sorted columns."""
    pos = (jnp.arange(n, dtype=jnp.float32) + 0.5) * (count.astype(jnp.float32) / n)
    idx = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, count - 1)
    return sorted_values[..., idx]


def sliced_wasserstein_target(features: jax.Array, mask: jax.Array | None = None) -> dict:
    """The style's feature vectors ``{"points": [m, C] float32, "valid": [m] bool}``."""
    f = _flat(features)
    return {"points": f, "valid": jnp.ones(f.shape[:1], bool)}


def sliced_wasserstein_score(
    features, target, key, mask=None, *, num_directions: int | None = SLICED_DIRECTIONS
) -> jax.Array:
    """Mean squared difference of sorted projections on random unit directions from ``key``.

    Computed as each projection's squared distance to the style's resampled projection of the
    same rank (stable order): the same terms, and the gradient of the sort (a permutation of the
    differences) without differentiating through it; the target is a constant (no gradient).
    Projections lie along rows ``[K, n]`` so the sorts run over contiguous memory
    (:mod:`nstjax.sorting`).
    """
    f = _flat(features)
    n, c = f.shape
    directions = jax.random.normal(key, (num_directions or c, c), jnp.float32)
    directions = directions / jnp.linalg.norm(directions, axis=1, keepdims=True)
    mine = directions @ f.T
    theirs = jnp.where(target["valid"], directions @ target["points"].T, jnp.inf)
    theirs = sorting.sort_rows(jax.lax.stop_gradient(theirs))
    resampled = _resample_sorted(theirs, jnp.sum(target["valid"]), n)
    order = sorting.argsort_rows(jax.lax.stop_gradient(mine))
    return _mse(mine, sorting.unsort_rows(resampled, order))


# ----------------------------------------------------------------------------- histogram


def _interp_uniform(table: jax.Array, p: jax.Array) -> jax.Array:
    """Per column ``c``, the value at probabilities ``p[:, c]`` of the quantile function whose
    values ``table[j, c]`` sit at ``(j + 1/2) / q``: linear between, constant beyond."""
    q = table.shape[0]
    pos = jnp.clip(p * q - 0.5, 0.0, q - 1.0)
    lo = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, max(q - 2, 0))
    frac = pos - lo
    below = jnp.take_along_axis(table, lo, axis=0)
    above = jnp.take_along_axis(table, jnp.minimum(lo + 1, q - 1), axis=0)
    return below + frac * (above - below)


def histogram_target(features: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """``[HISTOGRAM_QUANTILES, C]`` per-channel quantiles at ``(j + 1/2) / Q``, interpolating the
    sorted values placed at ``(k + 1/2) / m`` (Hazen's plotting positions)."""
    s = jnp.sort(_flat(features), axis=0)
    m, c = s.shape
    p = (jnp.arange(HISTOGRAM_QUANTILES, dtype=jnp.float32) + 0.5) / HISTOGRAM_QUANTILES
    return _interp_uniform(s, jnp.broadcast_to(p[:, None], (HISTOGRAM_QUANTILES, c)))


def histogram_remap(features: jax.Array, target: jax.Array) -> jax.Array:
    """``R(F)`` ``[n, C]``: each channel's rank ``i`` (stable order) gets the target's quantile at
    ``(i + 1/2) / n``."""
    f = _flat(features)
    n, c = f.shape
    p = (jnp.arange(n, dtype=jnp.float32) + 0.5) / n
    values = _interp_uniform(target, jnp.broadcast_to(p[:, None], (n, c)))
    return sorting.unsort_rows(values.T, sorting.argsort_rows(f.T)).T


def histogram_score(features, target, key=None, mask=None) -> jax.Array:
    """``mean((F - stop_gradient(R(F)))^2)``."""
    remapped = jax.lax.stop_gradient(histogram_remap(features, target))
    return _mse(_flat(features), remapped)


# ----------------------------------------------------------------------------------- mrf


def patches(features: jax.Array, size: int = MRF_PATCH) -> jax.Array:
    """All ``size x size`` patches (stride 1, no padding), ``[(h-size+1)(w-size+1), size^2 C]``,
    entries ordered (row offset, column offset, channel)."""
    h, w, c = features.shape
    f = features.astype(jnp.float32)
    ho, wo = h - size + 1, w - size + 1
    shifted = [f[i : i + ho, j : j + wo] for i in range(size) for j in range(size)]
    return jnp.stack(shifted, axis=2).reshape(ho * wo, size * size * c)


def mrf_target(features: jax.Array, mask: jax.Array | None = None) -> dict:
    """``{"patches": [m, 9C], "norms": [m], "valid": [m] bool}`` of the style's 3x3 patches."""
    p = patches(features)
    return {"patches": p, "norms": jnp.linalg.norm(p, axis=1), "valid": jnp.ones(p.shape[:1], bool)}


def mrf_nearest(queries: jax.Array, target: dict, chunk: int = MRF_CHUNK) -> jax.Array:
    """Index ``[n]`` of the target patch with the highest normalised cross-correlation with each
    query patch, computed ``chunk`` queries at a time (no gradient)."""
    norms = jnp.where(target["norms"] > 0, target["norms"], 1.0)
    style = jax.lax.stop_gradient(target["patches"])

    def best(query):
        ncc = (style @ query) / norms  # the query's own norm does not change the argmax
        return jnp.argmax(jnp.where(target["valid"], ncc, -jnp.inf))

    return jax.lax.map(best, jax.lax.stop_gradient(queries), batch_size=chunk)


def mrf_score(features, target, key=None, mask=None) -> jax.Array:
    """``mean((Psi(F) - Psi_NN(style))^2)`` over output patches and entries."""
    p = patches(features)
    return _mse(p, target["patches"][mrf_nearest(p, target)])


# ------------------------------------------------------------------------------ registry

STYLE_LOSSES: dict[str, StyleLoss] = {
    loss.name: loss
    for loss in (
        StyleLoss("gram", gram_target, gram_score, True, False, gram_blend, takes_product=True),
        StyleLoss("mean_std", mean_std_target, mean_std_score, True, False),
        StyleLoss("gaussian_w2", gaussian_w2_target, gaussian_w2_score, True, False),
        StyleLoss(
            "sliced_wasserstein", sliced_wasserstein_target, sliced_wasserstein_score, False, True
        ),
        StyleLoss("histogram", histogram_target, histogram_score, False, False),
        StyleLoss("mrf", mrf_target, mrf_score, False, False),
    )
}
