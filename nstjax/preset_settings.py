"""A preset with what a user set explicitly on top: the one place the rules of that merge live.

A preset's static options (:func:`nstjax.presets.static_options`) do not depend on the output
shape, so :func:`static_settings` needs none: it gives the output size and steps before any image
is read. Its run fields may (sums, not means), so :func:`run_settings` takes each run's real
output shape and evaluates the preset there, once. Their one caller is the expansion of a config
(:func:`nstjax.sweep.expand.expand`), through which a sweep, ``nstjax stylize``, ``nstjax video``
and :func:`nstjax.preset_run.make` (:func:`nstjax.api.stylize`) get their runs.
"""

from collections.abc import Mapping
from typing import Any

from nstjax.architecture import CHANNELS
from nstjax.errors import NstjaxError
from nstjax.presets import (
    OPTION_NAMES,
    RUN_FIELDS,
    check_preset_name,
    preset_values,
    size_dependent,
    static_options,
)

LAYER_FIELDS = ("content_layers", "style_layers")
"""Explicit layers keep the preset's formula: its per-layer constants follow them."""


def _given(explicit: Mapping[str, Any]) -> dict[str, Any]:
    given = {k: v for k, v in explicit.items() if v is not None}
    unknown = sorted(set(given) - set(RUN_FIELDS) - set(OPTION_NAMES))
    if unknown:
        raise ValueError(f"not preset fields: {unknown}")
    return given


def static_settings(name: str, explicit: Mapping[str, Any]) -> dict[str, Any]:
    """The preset's static options (:data:`nstjax.presets.OPTION_NAMES`) with the explicit ones
    on top; explicit ``size`` or ``steps`` replace the preset's multiscale schedule.

    Args:
        name: one of :data:`nstjax.presets.PRESET_NAMES`.
        explicit: values of :data:`~nstjax.presets.RUN_FIELDS` and
            :data:`~nstjax.presets.OPTION_NAMES` the user set (``None`` counts as not set);
            ``multiscale`` as ``((size, steps), ...)``.

    Returns:
        ``{option: value}``.

    Raises:
        NstjaxError: an unknown preset; ``multiscale`` with ``size``/``steps``; a size-dependent
            preset with a multiscale schedule (one line each).
    """
    check_preset_name(name)
    given = _given(explicit)
    options = {**static_options(name), **{k: v for k, v in given.items() if k in OPTION_NAMES}}
    if check_schedule(given):
        options["multiscale"] = None
    if options["multiscale"] and size_dependent(name):
        raise NstjaxError(
            f"--preset {name}: its weights depend on the output size (sums, not means), so it "
            "cannot run a --multiscale schedule; use --size"
        )
    return options


def check_schedule(explicit: Mapping[str, Any]) -> bool:
    """Whether ``size`` or ``steps`` is explicit (they replace any multiscale schedule).

    Raises:
        NstjaxError: an explicit ``multiscale`` with ``size`` or ``steps``.
    """
    scale_given = [k for k in ("size", "steps") if explicit.get(k) is not None]
    if explicit.get("multiscale") and scale_given:
        raise NstjaxError(
            f"--multiscale replaces --{' and --'.join(scale_given)}; give one or the other"
        )
    return bool(scale_given)


def run_settings(
    name: str,
    shape: tuple[int, int],
    explicit: Mapping[str, Any],
    channels: Mapping[str, int] = CHANNELS,
) -> dict[str, Any]:
    """The preset's :class:`nstjax.Run` fields at an output of ``shape``, the explicit ones on
    top; an explicit optimizer other than the preset's, without an explicit learning rate, takes
    that optimiser's default step (``learning_rate=None``).

    Args:
        name: one of :data:`nstjax.presets.PRESET_NAMES`.
        shape: the run's real output ``(height, width)``.
        explicit: as :func:`static_settings`.
        channels: channel count per layer.

    Returns:
        ``{field: value}`` for :data:`~nstjax.presets.RUN_FIELDS`.

    Raises:
        NstjaxError: an unknown preset or layer; ``noise_scale`` with an init other than
            ``"noise"``.
    """
    given = _given(explicit)
    layers = {k: given.get(k) for k in LAYER_FIELDS}
    preset = preset_values(name, shape, channels, **layers)
    run = {**preset.run, **{k: v for k, v in given.items() if k in RUN_FIELDS and k not in layers}}
    if given.get("optimizer", preset.options["optimizer"]) != preset.options["optimizer"]:
        if "learning_rate" not in given:
            run["learning_rate"] = None  # the preset's step belongs to its own optimiser
    init = run["init"]
    if "noise_scale" in given and not (isinstance(init, str) and init == "noise"):
        shown = repr(init) if isinstance(init, str) else "an image"
        raise NstjaxError(f"--noise-scale applies to --init noise only, and init is {shown}")
    return run
