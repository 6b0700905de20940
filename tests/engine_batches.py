"""A batch for the engine built by hand from numpy-side choices (tiny random VGG, 16 px), shared
by the engine's tests."""

import jax.numpy as jnp
import numpy as np

from nstjax import engine, losses, vgg
from nstjax.architecture import LAYER_INDEX

SIZE = 16
CONTENT_LAYERS = ("conv3_1",)
STYLE_LAYERS = ("conv1_1", "conv2_1", "conv3_1")


def images(n, seed):
    return list(np.random.default_rng(seed).random((n, SIZE, SIZE, 3)).astype(np.float32))


def batch(params, runs, program, contents, styles, tolerances=False):
    """Per-run arrays for the engine, built by hand from numpy-side choices (with
    ``tolerances``, per-run convergence tolerances ``ltol``/``gtol``, 0 = off)."""
    feats = vgg.features(params, jnp.stack(contents), program.content_layers)
    grams = [
        {n: losses.gram(f) for n, f in vgg.features(params, s, program.style_layers).items()}
        for s in styles
    ]
    targets = engine.Targets(
        content={n: f[jnp.asarray([r["content"] for r in runs])] for n, f in feats.items()},
        style={
            "gram": {
                n: jnp.stack([grams[r["style"]][n] for r in runs]) for n in program.style_layers
            }
        },
    )
    vec = lambda names: np.isin(np.arange(16), [LAYER_INDEX[n] for n in names]) / len(names)
    hyper = engine.Hyper(
        content_weight=jnp.asarray([r.get("cw", 1.0) for r in runs], jnp.float32),
        style_weight=jnp.asarray([r.get("sw", 10.0) for r in runs], jnp.float32),
        tv_weight=jnp.asarray([r.get("tv", 1e-3) for r in runs], jnp.float32),
        content_layer_weights=jnp.asarray(np.stack([vec(CONTENT_LAYERS)] * len(runs)), jnp.float32),
        style_layer_weights=jnp.asarray(np.stack([vec(STYLE_LAYERS)] * len(runs)), jnp.float32),
        learning_rate=jnp.asarray([r.get("lr", 2.0) for r in runs], jnp.float32),
    )
    if tolerances:
        hyper = hyper._replace(
            loss_tolerance=jnp.asarray([r.get("ltol", 0.0) for r in runs], jnp.float32),
            grad_tolerance=jnp.asarray([r.get("gtol", 0.0) for r in runs], jnp.float32),
        )
    pixels = jnp.stack([contents[r["content"]] for r in runs]) * 255.0
    return engine.Problem(pixels, hyper, targets)


RUNS = [
    dict(content=0, style=0),
    dict(content=1, style=1, sw=100.0, lr=1.0),
    dict(content=0, style=1, cw=0.0, tv=0.0, lr=1.0),
]
