"""Wang et al. 2021's local patterns LP = 1/2 LP1 + 1/2 LP2, with a bounded-memory patch match.

From the official code (EndyWon/StyleEval ``quality_criteria.py``, l. 18 and 189-236), for each of
``LOCAL_STYLE_LAYERS = ['3_1','4_1']``: every 3x3 patch (stride 1, VALID) of the output's and the
style's feature maps, flattened and normalised; each output patch is matched to the style patch
of highest cosine (``argmax``, first index on ties). LP1 is the mean cosine between output patches
and their matches; LP2 is the number of distinct style patches matched divided by the number of
distinct ``argmax`` indices when the style's patches are matched against themselves. Both are
averaged over the two layers, then LP = 0.5 LP1 + 0.5 LP2 (``weight_of_part1``, l. 233-234).

The cosine matrix (about 0.3 TFLOP at conv3_1 for a 256 px output and style) is computed in
blocks of output patches (:func:`best_matches`) so memory stays bounded. One deviation: a patch
of all-zero features (possible after ReLU) has no direction; the official code divides by its
zero norm (NaN), here its norm is floored so its cosines are 0.
"""

import jax
import jax.numpy as jnp

LOCAL_LAYERS: tuple[str, ...] = ("conv3_1", "conv4_1")
PATCH = 3
BLOCK_ELEMENTS = 1 << 22
"""Most cosine-matrix elements held at once per image (16 MiB of float32)."""


def patches(feature: jax.Array) -> jax.Array:
    """``[(h-2)(w-2), 9C]`` 3x3 patches of an ``[h, w, C]`` map, row-major positions, each patch
    flattened (row, column, channel) as ``tf.extract_image_patches`` flattens it."""
    h, w, _ = feature.shape
    shifted = [
        feature[i : h - PATCH + 1 + i, j : w - PATCH + 1 + j]
        for i in range(PATCH)
        for j in range(PATCH)
    ]
    stacked = jnp.stack(shifted, axis=2)  # [h-2, w-2, 9, C]
    return stacked.reshape((h - PATCH + 1) * (w - PATCH + 1), -1)


def normalized(rows: jax.Array) -> jax.Array:
    """Each row divided by its Euclidean norm (floored at the smallest normal float)."""
    norms = jnp.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / jnp.maximum(norms, jnp.finfo(rows.dtype).tiny)


def best_matches(queries: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """For each normalised query row, the index of the target row of highest cosine and that cosine.

    The ``[queries, targets]`` cosine matrix is computed in blocks of query rows (``lax.map``), at
    most :data:`BLOCK_ELEMENTS` elements at a time.

    Args:
        queries: ``[Q, D]`` unit rows.
        targets: ``[T, D]`` unit rows.

    Returns:
        ``([Q] int32 index, [Q] float cosine)``.
    """
    count, dim = queries.shape
    block = max(1, min(count, BLOCK_ELEMENTS // targets.shape[0]))
    blocks = -(-count // block)
    padded = jnp.pad(queries, ((0, blocks * block - count), (0, 0)))

    def match(rows):
        cosines = jnp.matmul(rows, targets.T, precision=jax.lax.Precision.HIGHEST)
        return jnp.argmax(cosines, axis=-1).astype(jnp.int32), jnp.max(cosines, axis=-1)

    index, best = jax.lax.map(match, padded.reshape(blocks, block, dim))
    return index.reshape(-1)[:count], best.reshape(-1)[:count]


def distinct_count(index: jax.Array, size: int) -> jax.Array:
    """How many distinct values ``index`` (values in ``[0, size)``) holds (``len(set(index))``)."""
    return jnp.zeros(size, jnp.int32).at[index].set(1).sum()


def style_side(style_feature: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A style map's normalised patches and its self-match distinct count (the LP2 denominator)."""
    targets = normalized(patches(style_feature))
    index, _ = best_matches(targets, targets)
    return targets, distinct_count(index, targets.shape[0])


def local_patterns_layer(
    output_feature: jax.Array, targets: jax.Array, style_distinct: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(LP1, LP2) at one layer, from the output's ``[h, w, C]`` map and :func:`style_side`."""
    index, best = best_matches(normalized(patches(output_feature)), targets)
    return jnp.mean(best), distinct_count(index, targets.shape[0]) / style_distinct


def local_patterns(output_features: dict, style_sides: dict) -> dict[str, jax.Array]:
    """``local_patterns1``, ``local_patterns2`` and ``local_patterns``, averaged over
    :data:`LOCAL_LAYERS`, ``style_sides`` from :func:`style_side` by layer."""
    parts = [local_patterns_layer(output_features[n], *style_sides[n]) for n in LOCAL_LAYERS]
    lp1 = jnp.mean(jnp.stack([p[0] for p in parts]))
    lp2 = jnp.mean(jnp.stack([p[1] for p in parts]))
    return {"local_patterns1": lp1, "local_patterns2": lp2, "local_patterns": 0.5 * lp1 + 0.5 * lp2}
