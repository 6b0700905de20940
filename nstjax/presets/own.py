"""nstjax's own defaults as a preset, read from :mod:`nstjax.run` (the one source of them)."""

from collections.abc import Mapping

from nstjax.architecture import CHANNELS
from nstjax.presets.common import (
    OPTION_NAMES,
    RUN_FIELDS,
    Layers,
    Preset,
    equal,
    layer_choice,
    split,
)
from nstjax.run import DEFAULT_SIZE, Options, Run

NSTJAX_OPTIONS = {
    **{
        k: (getattr(Options, k), "nstjax.run.Options")
        for k in OPTION_NAMES[:3] + ("lbfgs_history", "average_decay")
    },
    "size": (DEFAULT_SIZE, "nstjax.run.DEFAULT_SIZE"),
    "multiscale": (None, "nstjax stylize: one scale unless --multiscale"),
}
"""nstjax's static options: :class:`nstjax.run.Options`' defaults (the one source of them)."""


def nstjax(
    shape: tuple[int, int],
    channels: Mapping[str, int] = CHANNELS,
    content_layers: Layers = None,
    style_layers: Layers = None,
) -> Preset:
    """nstjax's own defaults, read from :class:`nstjax.Run` and :class:`nstjax.Options` (the one
    source of them, :mod:`nstjax.run`); named layers share weight 1."""
    del shape, channels
    run, where = Run(), "nstjax.run.Run"
    values = {k: (getattr(run, k), where) for k in RUN_FIELDS}
    for key, chosen in (("content_layers", content_layers), ("style_layers", style_layers)):
        values[key] = (layer_choice(chosen, getattr(run, key), equal), where)
    return split("nstjax", {**values, **NSTJAX_OPTIONS}, ())
