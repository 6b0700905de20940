"""VGG-19's convolutional part as a Flax module, and the frozen feature extractor built on it.

The parameters are a plain pytree::

    {"params": {"conv1_1": {"kernel": [3, 3, 3, 64], "bias": [64]}, ..., "conv5_4": {...}},
     "preprocess": {"scale": [], "mean": [3], "std": [3], "channel_order": [3] int32},
     "prepared": {"conv1_1": {...}, ...}}  # optional, from prepare()

``"params"`` is what the Flax module takes; ``"preprocess"`` is the input convention that travels
with the weights (for the Caffe weights: RGB -> BGR, x255, minus the ImageNet mean), applied inside
:func:`features` so callers always pass RGB images in [0, 1]. ``"prepared"`` holds the kernels
rearranged once for a faster convolution (:func:`prepare`, :mod:`nstjax.kernels`); which
convolution is named by the caller (``features(..., convolution=...)``, ``engine.Program``), never
inferred from the pytree. Everything is an array, so the whole pytree can be an argument of a jitted
function.
"""

from collections.abc import Iterable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nstjax import kernels, weights
from nstjax.architecture import BLOCKS, LAYER_INDEX, LAYER_NAMES, check_layer_names

Params = dict[str, Any]
POOLINGS = ("max", "avg")


def _pool(x: jax.Array, pooling: str) -> jax.Array:
    """2x2 pooling, stride 2, VALID (odd rows/columns dropped), written as a reshape and a
    reduction: its gradient is elementwise, where ``reduce_window``'s is a select-and-scatter that
    XLA:CPU runs slowly (measured, docs/benchmarks.md)."""
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)
    return x.max(axis=(2, 4)) if pooling == "max" else x.mean(axis=(2, 4))


class Conv3x3(nn.Module):
    """3x3 convolution + bias + ReLU (:func:`nstjax.kernels.conv3x3_relu`), parameters ``kernel``
    (HWIO) and ``bias`` as ``nn.Conv`` names them; kernels prepared by :func:`prepare` come in
    the ``"prepared"`` collection."""

    features: int
    dtype: Any = jnp.float32
    convolution: str = "xla"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (3, 3, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        prepared = self.variables.get("prepared") or None
        return kernels.conv3x3_relu(x.astype(self.dtype), kernel, bias, prepared, self.convolution)


class VGG19(nn.Module):
    """VGG-19 convolutions conv1_1 ... ``last_layer``, NHWC, returning every rectified output.

    Attributes:
        channels: output channels of each block (VGG-19: 64, 128, 256, 512, 512); smaller widths
            give the tiny networks the tests use.
        last_layer: the deepest layer computed; nothing after it runs.
        pooling: ``"max"`` or ``"avg"`` 2x2 pooling between blocks.
        dtype: the computation dtype (parameters stay float32).
        remat: recompute each block's activations in the backward pass instead of storing them
            (``jax.checkpoint`` per block: about +50% FLOPs for a fraction of the memory).
        convolution: which kernels run the convolutions (:data:`nstjax.kernels.CONVOLUTIONS`).
    """

    channels: Sequence[int] = tuple(c for _, c in BLOCKS)
    last_layer: str = "conv5_4"
    pooling: str = "max"
    dtype: Any = jnp.float32
    remat: bool = False
    convolution: str = "xla"

    def setup(self):
        for block, ((count, _), cout) in enumerate(zip(BLOCKS, self.channels), start=1):
            for i in range(1, count + 1):
                name = f"conv{block}_{i}"
                layer = Conv3x3(cout, dtype=self.dtype, convolution=self.convolution, name=name)
                setattr(self, name, layer)

    def _block(self, x: jax.Array, names: tuple[str, ...]) -> tuple[jax.Array, dict]:
        outputs = {}
        for name in names:
            x = outputs[name] = getattr(self, name)(x)
        return x, outputs

    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        stop = LAYER_INDEX[self.last_layer]
        outputs = {}
        for block, (count, _) in enumerate(BLOCKS, start=1):
            names = tuple(
                n
                for n in (f"conv{block}_{i}" for i in range(1, count + 1))
                if LAYER_INDEX[n] <= stop
            )
            if not names:
                break
            if block > 1:
                x = _pool(x, self.pooling)
            run = VGG19._block
            if self.remat:
                run = nn.checkpoint(run, static_argnums=(2,))
            x, block_outputs = run(self, x, names)
            outputs.update(block_outputs)
        return outputs


def _module_for(
    params: Params, last_layer: str, pooling: str, dtype: Any, remat: bool, convolution: str
) -> VGG19:
    convs = params["params"]
    # Widths of the blocks present; blocks past the deepest layer need no parameters at all.
    channels = tuple(
        convs[f"conv{b}_1"]["kernel"].shape[-1] if f"conv{b}_1" in convs else width
        for b, (_, width) in enumerate(BLOCKS, start=1)
    )
    return VGG19(
        channels=channels,
        last_layer=last_layer,
        pooling=pooling,
        dtype=dtype,
        remat=remat,
        convolution=convolution,
    )


def deepest(layers: Iterable[str]) -> str:
    """The deepest of the given layer names (the last one the network must compute)."""
    return max(check_layer_names(layers), key=LAYER_INDEX.__getitem__)


def preprocess(params: Params, images: jax.Array) -> jax.Array:
    """RGB images in [0, 1] to the network's input convention (channel order, scale, mean, std)."""
    pre = params["preprocess"]
    x = (images * pre["scale"] - pre["mean"]) / pre["std"]
    return jnp.take(x, pre["channel_order"], axis=-1)


def features(
    params: Params,
    images: jax.Array,
    layers: Iterable[str],
    pooling: str = "max",
    *,
    dtype: Any = jnp.float32,
    remat: bool = False,
    convolution: str = "xla",
) -> dict[str, jax.Array]:
    """Rectified activations of VGG-19 at the requested layers.

    Args:
        params: from :func:`load_params` (or :func:`init_params` for a random network).
        images: float32 RGB in [0, 1], ``[H, W, 3]`` or ``[N, H, W, 3]``.
        layers: conv names such as ``"conv4_2"``; only layers up to the deepest one are computed.
        pooling: ``"max"`` (VGG's own) or ``"avg"`` (Gatys et al.'s choice).
        dtype: computation dtype, e.g. ``jnp.bfloat16``; activations come back in it.
        remat: rematerialise each block in the backward pass to save memory.
        convolution: which kernels run the convolutions (:data:`nstjax.kernels.CONVOLUTIONS`);
            anything but ``"xla"`` needs ``params`` from :func:`prepare` for it.

    Returns:
        A dict from each requested layer name to its activation after ReLU, ``[h, w, C]`` or
        ``[N, h, w, C]`` to match ``images``.
    """
    layers = check_layer_names(layers)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    single = images.ndim == 3
    x = preprocess(params, images[None] if single else images)
    module = _module_for(params, deepest(layers), pooling, dtype, remat, convolution)
    variables = {"params": params["params"]}
    if convolution != "xla":
        if not params.get("prepared"):
            raise ValueError(
                f"convolution {convolution!r} needs params from nstjax.vgg.prepare(params, "
                f"{convolution!r})"
            )
        variables["prepared"] = params["prepared"]
    outputs = module.apply(variables, x.astype(dtype))
    return {name: outputs[name][0] if single else outputs[name] for name in layers}


def prepare(params: Params, convolution: str) -> Params:
    """``params`` with each kernel rearranged once for ``convolution`` and its gradient.

    Args:
        params: from :func:`load_params` or :func:`init_params` (an existing ``"prepared"`` entry
            is replaced).
        convolution: one of :data:`nstjax.kernels.CONVOLUTIONS` (usually
            ``engine.Program.convolution``); ``"xla"`` needs nothing and removes the entry.

    Returns:
        A new pytree with a ``"prepared"`` entry for ``features(..., convolution=...)``. It
        computes the same values (to float32 rounding) as without it.
    """
    out = {k: v for k, v in params.items() if k != "prepared"}
    kernels_by_layer = {name: p["kernel"] for name, p in params["params"].items()}
    prepared = kernels.prepare(kernels_by_layer, convolution)
    if prepared:
        out["prepared"] = prepared
    return out


def _preprocess_arrays(meta: dict) -> dict[str, jax.Array]:
    order = {"BGR": [2, 1, 0], "RGB": [0, 1, 2]}[meta["channel_order"]]
    return {
        "scale": jnp.float32(meta["scale"]),
        "mean": jnp.asarray(meta["mean_rgb"], jnp.float32),
        "std": jnp.asarray(meta["std_rgb"], jnp.float32),
        "channel_order": jnp.asarray(order, jnp.int32),
    }


def load_params(path=None) -> Params:
    """Loads the pretrained VGG-19 parameters with their input convention.

    Args:
        path: an ``.h5`` (Keras layout) or a converted ``.npz``; ``None`` resolves through
            ``$NSTJAX_WEIGHTS``, the cache, then a download (see :mod:`nstjax.weights`).

    Returns:
        The parameter pytree described in this module's docstring.
    """
    arrays, meta = weights.load_arrays(path)
    convs = {
        name: {
            "kernel": jnp.asarray(arrays[f"{name}/kernel"]),
            "bias": jnp.asarray(arrays[f"{name}/bias"]),
        }
        for name in LAYER_NAMES
    }
    return {"params": convs, "preprocess": _preprocess_arrays(meta["preprocess"])}


def init_params(key: jax.Array, channels: Sequence[int] = (4, 8, 8, 16, 16)) -> Params:
    """Randomly initialised (He-normal) parameters, Caffe convention: a tiny VGG for tests.

    Args:
        key: a PRNG key.
        channels: output channels of each of the five blocks.
    """
    seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    convs, cin = {}, 3
    for block, ((count, _), cout) in enumerate(zip(BLOCKS, channels), start=1):
        for i in range(1, count + 1):
            fan_in = 9 * cin
            kernel = rng.standard_normal((3, 3, cin, cout), np.float32) * np.sqrt(2.0 / fan_in)
            convs[f"conv{block}_{i}"] = {
                "kernel": jnp.asarray(kernel, jnp.float32),
                "bias": jnp.zeros((cout,), jnp.float32),
            }
            cin = cout
    return {"params": convs, "preprocess": _preprocess_arrays(weights.CAFFE_PREPROCESS)}


def count_params(params: Params) -> int:
    """Number of convolution parameters (20,024,384 for VGG-19)."""
    return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params["params"]))
