"""``nstjax stylize``'s flags as a locked config and its runs from the one expansion.

The flags override fields of :func:`nstjax.sweep.config.default_config` (:data:`FLAG_FIELDS`),
and the locked config goes through :func:`nstjax.sweep.expand.expand`, the one place where
defaults, presets and axes are applied, as a sweep's does. A flag that was given and whose field
a preset may supply also becomes a one-value entry of ``sweep.axes``: chosen, so the preset
never replaces it, even when it equals the default. Problems are reported naming the flag.
"""

import argparse
import dataclasses
import re
from collections.abc import Mapping, Sequence

import ml_collections

from nstjax.errors import NstjaxError
from nstjax.run import INTERACTIVE_CHUNK, Options, Run
from nstjax.sweep.config import PER_RUN_FIELDS, STATIC_FIELDS

_FLAG_OF_FIELD = {"learning_rate": "lr"}
"""Config fields whose flag has another name (``--lr``)."""

FLAG_FIELDS: dict[str, str] = {
    **{_FLAG_OF_FIELD.get(n, n): path for n, path in {**PER_RUN_FIELDS, **STATIC_FIELDS}.items()},
    "style_blend": "data.style_blend",
    "masks": "data.masks",
    "multiscale": "optim.multiscale",
    "preset": "preset",
    "weights": "model.weights",
    "save_every": "sweep.save_every",
    "quality": "sweep.quality",
}
"""Flag (its attribute) -> config field. ``None`` means not given: the field keeps its default
(or the preset's value)."""


def _field_value(flag: str, value):
    """A flag's value as its config field holds it."""
    from nstjax import schedule

    if flag in ("content_layers", "style_layers"):
        return [name.strip() for name in value.split(",") if name.strip()]
    if flag == "multiscale":
        return [list(scale) for scale in schedule.parse_schedule(value)]
    if flag in ("style_blend", "masks"):
        return list(value)
    return value


def from_flags(
    args: argparse.Namespace, contents: Sequence[str], styles: Sequence[str]
) -> ml_collections.ConfigDict:
    """The locked config that ``args`` (``nstjax stylize``'s or ``nstjax video``'s flags)
    describe, with the (listed) ``contents`` and ``styles``."""
    from nstjax.presets import OPTION_NAMES, RUN_FIELDS
    from nstjax.sweep.config import AXES, default_config, get

    config = default_config()
    config.data.content = [str(c) for c in contents]
    config.data.style = [str(s) for s in styles]
    for flag, path in FLAG_FIELDS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        group, _, name = path.rpartition(".")
        node = get(config, group) if group else config
        node[name] = _field_value(flag, value)
        if name in AXES and name in (*RUN_FIELDS, *OPTION_NAMES):
            config.sweep.axes[name] = [node[name]]  # given: the preset does not replace it
    config.lock()
    return config


def runs_of(
    config: ml_collections.ConfigDict,
    contents: Sequence[str],
    styles: Sequence[str],
    content_shapes: Mapping[str, tuple[int, int]],
    output_shapes: Mapping[str, tuple[int, int]] | None = None,
) -> list:
    """The config's runs (:class:`nstjax.sweep.expand.SweepRun`), from
    :func:`nstjax.sweep.expand.expand` (see it for the arguments).

    Raises:
        NstjaxError: the first problem, one line naming the flag.
    """
    from nstjax.sweep.expand import expand

    expansion, problems = expand(config, contents, styles, content_shapes, output_shapes)
    if problems:
        raise NstjaxError(flagged(getattr(problems[0], "text", problems[0])))
    return expansion.runs


def _flag_names() -> dict[str, str]:
    """Config path, field name and dashed field name -> ``--flag``."""
    names = {}
    for flag, path in FLAG_FIELDS.items():
        dashed = "--" + flag.replace("_", "-")
        field = path.rpartition(".")[2]
        names.update({path: dashed, field: dashed, field.replace("_", "-"): dashed})
    return names


def flagged(problem: str) -> str:
    """A problem that starts with a config field or field name, naming its flag instead:
    ``"data.style_blend: 1 weight(s) for 2 style(s)"`` -> ``"--style-blend: ..."``."""
    match = re.match(r"[\w.\-]+", problem)
    flag = _flag_names().get(match.group(0)) if match else None
    return flag + problem[match.end() :] if flag else problem


def scales(run) -> list[tuple[int, int]]:
    """A run's ``(size, steps)`` per scale: its schedule, or its one size and steps."""
    return list(run.schedule) or [(run.values["size"], run.values["steps"])]


def options(run, args: argparse.Namespace) -> Options:
    """The :class:`nstjax.Options` of a run, with the call's batch size, progress chunk
    (``--save-every`` or :data:`nstjax.run.INTERACTIVE_CHUNK`) and quality measures."""
    from nstjax.sweep.expand import options_of

    chunk = args.save_every or INTERACTIVE_CHUNK
    return dataclasses.replace(
        options_of(run.values, chunk), batch_size=args.batch_size, quality=args.quality
    )


def api_run(run, contents: Sequence[str], styles: Sequence[str], init=None, masks=None) -> Run:
    """The :class:`nstjax.Run` of a run whose images are ``contents[i]``/``styles[j]``: a
    blend's style is ``{j: weight}``; ``init`` an image for an ``--init`` file; ``masks`` the
    mask images of a blend."""
    from nstjax.sweep.expand import to_api_run

    style = dict(enumerate(run.blend)) if run.blend else list(styles).index(run.style)
    api = to_api_run(run.values, list(contents).index(run.content), style, init)
    return dataclasses.replace(api, masks=list(masks)) if masks else api
