"""What a feed-forward training run is: one frozen dataclass, the one source of its defaults.

``K`` networks train together, one per *setting*: every per-network field (``styles``, the three
loss weights, ``learning_rate``, ``style_loss``) holds one value shared by all networks or ``K`` values, and ``K``
is the longest of them. So ``styles=(a, b, c)`` trains three styles at the same weights, and
``styles=(a,), style_weight=(10, 30, 100)`` trains one style at three strengths.

The loss defaults (layers, weights) are those of :class:`nstjax.run.Run`, so a network is trained
on the very objective ``nstjax stylize`` optimises; the training defaults (256 px, batch 4,
Adam 1e-3, 40,000 steps = 2 epochs of MS-COCO 2014 train) are Johnson et al.'s.
"""

import dataclasses
import json
from pathlib import Path
from typing import Any

import ml_collections

from nstjax import run as run_lib
from nstjax import style_mix
from nstjax import validate as checks
from nstjax.errors import NstjaxError
from nstjax.feedforward.network import NORMS, UPSAMPLES, TransformerNet
from nstjax.feedforward.step import NETWORK_AXES

_RUN = run_lib.Run()
CROPS = ("random", "center", "resize")
PER_NETWORK = (
    "styles",
    "content_weight",
    "style_weight",
    "tv_weight",
    "learning_rate",
    "style_loss",
)
OPTION = {"styles": "--style", "learning_rate": "--lr", "data_workers": "--config.data_workers"}
"""The ``nstjax train`` option of a field whose name is not the option's."""


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """The transformation network's shape (:class:`~nstjax.feedforward.network.TransformerNet`)."""

    norm: str = "instance"
    upsample: str = "resize"
    width: int = 32
    residual_blocks: int = 5

    def module(self) -> TransformerNet:
        return TransformerNet(self.norm, self.upsample, self.width, self.residual_blocks)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run of ``K`` networks.

    Attributes:
        styles: style image path(s), one per network or one for all.
        content_dir: folder of content images (any sizes).
        size: side of the square training crops, pixels.
        steps: optimisation steps.
        batch_size: content images per step (shared by all networks; split over local devices).
        content_weight, style_weight, tv_weight: loss weights (one, or one per network).
        learning_rate: Adam's step size (one, or one per network).
        style_loss: the style loss (one spec, or one per network): a name of
            :data:`nstjax.style_losses.STYLE_LOSSES` or a weighted mix
            ``"gram:1,sliced_wasserstein:0.5"`` (:func:`nstjax.style_mix.parse_style_loss`).
        content_layers, style_layers: VGG-19 layers of the two losses (equal layer weights).
        pooling: ``"max"`` or ``"avg"`` in VGG.
        style_size: longer side of the style images; ``None`` is ``size``.
        crop: ``"random"`` (shorter side resized to ``size``, random square crop), ``"center"``
            (the same, centred crop) or ``"resize"`` (warped to ``size x size``, as Johnson).
        holdout: the last ``holdout`` content images (by name) are not trained on; samples
            and held-out losses use them.
        seed: seeds the network initialisation, the data order and the crops.
        save_every: steps between checkpoints (one is also written at the end).
        keep: checkpoints kept.
        sample_every: steps between sample stylisations and loss-curve updates (0: at the end).
        max_nonfinite_steps: a network whose step gives a non-finite loss, gradient or result
            this many steps in a row is stopped (each such step is rejected: the network keeps
            its last finite state; the others go on unaffected).
        network_axis: how the K networks share a step
            (:data:`~nstjax.feedforward.step.NETWORK_AXES`): ``"loop"`` (one compiled network
            step run K times: bit-identical to each trained alone, compiled once whatever K
            is), ``"unroll"`` (traced K times into one program: bit-identical, compile time
            superlinear in K), ``"vmap"`` (batched: equal up to rounding) or ``"map"``
            (``jax.lax.map``: compiled once, slow on CPU); docs/feedforward.md has the figures.
        data_workers: processes that decode and crop the content images (0: threads of the
            training process); the batches are the same either way, but a run resumes only with
            the count it was saved with (the data iterator's saved state depends on it).
        network: the network's shape.
        weights: VGG-19 weights file; ``None`` resolves as :func:`nstjax.vgg.load_params`.
    """

    styles: tuple[str, ...]
    content_dir: str
    size: int = 256
    steps: int = 40_000
    batch_size: int = 4
    content_weight: tuple[float, ...] = (_RUN.content_weight,)
    style_weight: tuple[float, ...] = (_RUN.style_weight,)
    tv_weight: tuple[float, ...] = (_RUN.tv_weight,)
    learning_rate: tuple[float, ...] = (1e-3,)
    style_loss: tuple[str, ...] = (run_lib.DEFAULT_STYLE_LOSS,)
    content_layers: tuple[str, ...] = run_lib.DEFAULT_CONTENT_LAYERS
    style_layers: tuple[str, ...] = run_lib.DEFAULT_STYLE_LAYERS
    pooling: str = run_lib.Options.pooling
    style_size: int | None = None
    crop: str = "random"
    holdout: int = 2
    seed: int = 0
    save_every: int = 1000
    keep: int = 3
    sample_every: int = 1000
    max_nonfinite_steps: int = 10
    network_axis: str = NETWORK_AXES[0]
    data_workers: int = 0
    network: NetworkConfig = NetworkConfig()
    weights: str | None = None

    @property
    def num_networks(self) -> int:
        return max(len(getattr(self, name)) for name in PER_NETWORK)

    def per_network(self, name: str) -> tuple:
        """The field ``name`` with one value per network (a single value repeated)."""
        values = tuple(getattr(self, name))
        return values * self.num_networks if len(values) == 1 else values

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """The inverse of :meth:`to_json` (after ``json.loads``); unknown fields are rejected."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise NstjaxError(f"training config: unknown field(s) {', '.join(unknown)}")
        data = dict(data)
        data.setdefault("network_axis", "vmap")  # written before the field: trained batched
        data["network"] = NetworkConfig(**data.get("network", {}))
        for name in (*PER_NETWORK, "content_layers", "style_layers"):
            if name in data:
                data[name] = tuple(data[name])
        return cls(**data)


def default_config() -> ml_collections.ConfigDict:
    """Every field of :class:`TrainConfig` with its default, as a ConfigDict: what a training
    config file's ``get_config`` starts from (``nstjax train --config FILE``). ``styles`` and
    ``content_dir`` are empty: the config file or the command line gives them."""

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return [plain(v) for v in value] if isinstance(value, (list, tuple)) else value

    return ml_collections.ConfigDict(plain(dataclasses.asdict(TrainConfig((), ""))))


def from_config(config: ml_collections.ConfigDict) -> TrainConfig:
    """The :class:`TrainConfig` a training ConfigDict describes (not yet checked: :func:`validate`).

    Raises:
        NstjaxError: a field :class:`TrainConfig` does not have.
    """
    return TrainConfig.from_dict(config.to_dict())


def _option(name: str) -> str:
    return OPTION.get(name, f"--{name.replace('_', '-')}")


def _check_counts(config: TrainConfig) -> None:
    """Each per-network option has 1 value or one per network; the networks are counted by
    ``--style`` when it has several values, else by the first option that has."""
    counts = {name: len(getattr(config, name)) for name in PER_NETWORK}
    for name, n in counts.items():
        if n == 0:
            raise NstjaxError(f"{_option(name)}: no value given")
    by = "styles" if counts["styles"] > 1 else next((k for k, n in counts.items() if n > 1), None)
    if by is None:
        return
    k = counts[by]
    for name, n in counts.items():
        if n not in (1, k):
            raise NstjaxError(
                f"{_option(name)}: {n} values, but {_option(by)} gives {k} networks "
                f"(give 1 value or {k})"
            )


def _check_values(config: TrainConfig) -> None:
    for name in ("content_weight", "style_weight", "tv_weight"):
        checks.numbers(getattr(config, name), _option(name), minimum=0)
    checks.numbers(config.learning_rate, "--lr", positive=True)
    for spec in config.style_loss:
        style_mix.parse_style_loss(spec, "--style-loss")
    for name in ("size", "steps", "batch_size", "save_every", "keep", "max_nonfinite_steps"):
        checks.integer(getattr(config, name), _option(name), 16 if name == "size" else 1)
    for name in ("sample_every", "holdout", "seed", "data_workers"):
        checks.integer(getattr(config, name), _option(name), 0)
    if config.style_size is not None:
        checks.integer(config.style_size, "--style-size", 16)
    checks.choice(config.crop, "--crop", CROPS)
    checks.choice(config.pooling, "--pooling", run_lib.POOLINGS)
    checks.choice(config.network_axis, "--network-axis", NETWORK_AXES)
    net = config.network
    checks.choice(net.norm, "--norm", NORMS)
    checks.choice(net.upsample, "--upsample", UPSAMPLES)
    checks.integer(net.width, "--width", 1)
    checks.integer(net.residual_blocks, "--residual-blocks", 0)


def validate(config: TrainConfig) -> None:
    """Raises :class:`NstjaxError` naming the first bad field of ``config`` (nothing is read)."""
    if not config.content_dir:
        raise NstjaxError("--content-dir: no folder given (the config's content_dir is empty)")
    _check_counts(config)
    _check_values(config)
    for name in ("content_layers", "style_layers"):
        layers = getattr(config, name)
        if not layers:
            raise NstjaxError(f"{_option(name)} '': empty; name at least one")
        run_lib.layer_weight_vector(layers, _option(name))


def load(model_dir: str | Path) -> TrainConfig:
    """The config saved in a model folder (``config.json``)."""
    path = Path(model_dir) / "config.json"
    if not Path(model_dir).is_dir():
        raise NstjaxError(f"--model '{model_dir}': no such folder")
    if not path.is_file():
        raise NstjaxError(f"--model '{model_dir}': no config.json (not a trained model folder)")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise NstjaxError(
            f"--model '{model_dir}': config.json is not a training config ({e})"
        ) from e
