"""A preset's one run: :class:`nstjax.Run` and :class:`nstjax.Options` from a reference's settings
with the caller's on top, through the one expansion of a config
(:func:`nstjax.sweep.expand.expand`). Used by :func:`nstjax.api.stylize` and the benches.
"""

import dataclasses
from typing import Any, NamedTuple

from nstjax.errors import NstjaxError
from nstjax.run import Options, Run
from nstjax.sweep.config import AXES, default_config
from nstjax.sweep.expand import expand, options_of, to_api_run


class Made(NamedTuple):
    """What :func:`make` returns: a run, the static options, and the output size or schedule."""

    run: Any  # nstjax.Run
    options: Any  # nstjax.Options
    size: int
    schedule: tuple[tuple[int, int], ...] | None


def make(name: str, shape: tuple[int, int], **settings) -> Made:
    """A :class:`nstjax.Run` and :class:`nstjax.Options` from a preset, ``settings`` on top,
    through the one expansion (:func:`nstjax.sweep.expand.expand`): a one-run config whose
    given settings are one-value axes, so they win over the preset.

    Args:
        name: one of :data:`nstjax.presets.PRESET_NAMES`.
        shape: the output's ``(height, width)`` (the preset's sums depend on it).
        **settings: fields of :class:`nstjax.Run` and :class:`nstjax.Options`, ``size`` and
            ``multiscale``; those a preset sets override it (the rules of :mod:`nstjax.preset_settings`).

    Returns:
        A :class:`Made`.

    Raises:
        NstjaxError: an unknown preset or setting, or conflicting settings.
    """
    run_names = {f.name for f in dataclasses.fields(Run)}
    option_names = {f.name for f in dataclasses.fields(Options)}
    unknown = sorted(set(settings) - run_names - option_names - {"size", "multiscale"})
    if unknown:
        raise NstjaxError(f"unknown setting(s) {', '.join(unknown)} for preset {name!r}")
    described = {
        k: v
        for k, v in settings.items()
        if v is not None and (k in AXES or k == "multiscale") and not (k == "init" and _array(v))
    }
    config = default_config()
    config.preset = name
    config.optim.multiscale = [list(s) for s in described.pop("multiscale", None) or ()]
    for key, value in described.items():
        config.sweep.axes[key] = [value]  # given: the preset does not replace it
    config.lock()
    expansion, problems = expand(
        config, ["content"], ["style"], {"content": shape}, {"content": shape}
    )
    if problems:
        raise NstjaxError(getattr(problems[0], "text", problems[0]))
    (planned,) = expansion.runs
    rest = {k: v for k, v in settings.items() if k not in described and k != "multiscale"}
    run = dataclasses.replace(
        to_api_run(planned.values, 0, 0), **{k: v for k, v in rest.items() if k in run_names}
    )
    options = dataclasses.replace(
        options_of(planned.values), **{k: v for k, v in rest.items() if k in option_names}
    )
    return Made(run, options, planned.values["size"], planned.schedule or None)


def _array(value) -> bool:
    return not isinstance(value, str)
