"""A config expanded into its runs: image pairs x the product of the axes x the zip group (or,
for a blend, one run per content with every style).

The order is fixed: the image pairs vary slowest, then each axis of ``sweep.axes`` (by name), then
the rows of ``sweep.zip`` fastest. Run ``i`` is therefore the same run every time the same config
is expanded, which is what lets a workdir resume.
"""

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from nstjax.errors import NstjaxError
from nstjax.resample import long_side_shape
from nstjax.run import INITS, Options, Run, validate_options, validate_run
from nstjax.sweep import stylize_fields
from nstjax.sweep.config import AXES, PER_RUN_FIELDS, STATIC_FIELDS, default_config, get


@dataclasses.dataclass(frozen=True)
class SweepRun:
    """One run of a sweep.

    Attributes:
        id: its folder name under ``runs/`` (the zero-padded index).
        index: its position in the sweep.
        label: the values of the axes that vary, e.g. ``"style_weight=1e+06, seed=2"``.
        content: the content image file.
        style: the style image file; a blend's every style file, in order.
        values: every per-run and static field (:data:`PER_RUN_FIELDS`, :data:`STATIC_FIELDS`).
        coords: axis name -> value label, for every axis of the sweep (``content`` and ``style``
            included), whether or not it varies.
        blend: a blend's weight of each style (``data.style_blend``); ``()``: one style.
        masks: a blend's mask image of each style (``data.masks``); ``()``: none.
        schedule: a coarse-to-fine schedule ``((size, steps), ...)`` (``optim.multiscale`` or
            the preset's); ``()``: one scale, ``values["size"]`` and ``values["steps"]``.
    """

    id: str
    index: int
    label: str
    content: str
    style: str | tuple[str, ...]
    values: dict[str, Any]
    coords: dict[str, str]
    blend: tuple[float, ...] = ()
    masks: tuple[str, ...] = ()
    schedule: tuple[tuple[int, int], ...] = ()

    def record(self) -> dict[str, Any]:
        """The JSON-able description of the run (manifest entries, run.json)."""
        return {
            "id": self.id,
            "label": self.label,
            "content": self.content,
            "style": self.style,
            "hyperparameters": self.values,
            "coords": self.coords,
        }


@dataclasses.dataclass(frozen=True)
class Expansion:
    """A sweep's runs and its axes.

    Attributes:
        runs: every run, in sweep order.
        axes: axis name -> the labels of its values, in order (``content`` and ``style`` first).
        varying: the axes with more than one value.
    """

    runs: list[SweepRun]
    axes: dict[str, list[str]]
    varying: list[str]


def value_label(value: Any) -> str:
    """A short label of an axis value: ``1e+06``, ``conv1_1+conv2_1``, a file's stem."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "+".join(value_label(v) for v in value)
    if isinstance(value, dict):
        return "+".join(f"{k}:{value_label(v)}" for k, v in value.items())
    if isinstance(value, str) and ("/" in value or Path(value).suffix):
        return Path(value).stem
    return str(value)


def _axis_lists(group: ml_collections.ConfigDict, where: str, problems: list[str]) -> dict:
    lists = {}
    for name in group.keys():
        values = group[name]
        if name not in AXES:
            problems.append(f"{where}.{name}: unknown axis (axes: {', '.join(AXES)})")
        elif not isinstance(values, (list, tuple)):
            problems.append(f"{where}.{name}: expected a list of values, got {values!r}")
        elif not values:
            problems.append(f"{where}.{name}: empty list (the grid would have no runs)")
        else:
            lists[name] = list(values)
    return lists


def _check_static(values: dict[str, Any]) -> list[str]:
    problems = []
    size = values["size"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        problems.append(f"size must be an integer >= 1, got {size!r}")
    try:
        validate_options(options_of(values))
    except NstjaxError as e:
        problems.append(str(e))
    return problems


def options_of(values: dict[str, Any], chunk: int = Options.chunk) -> Options:
    """The :class:`nstjax.Options` of a run's values."""
    return Options(
        steps=values["steps"],
        optimizer=values["optimizer"],
        pooling=values["pooling"],
        lbfgs_history=values["lbfgs_history"],
        average_decay=values["average_decay"],
        dtype=values["dtype"],
        remat=values["remat"],
        chunk=chunk,
    )


def to_api_run(values: dict[str, Any], content: Any, style: Any, init=None) -> Run:
    """The :class:`nstjax.Run` of a run's values, with its images' keys (and an init image)."""
    fields = {name: values[name] for name in PER_RUN_FIELDS}
    if init is not None:
        fields["init"] = init
    return Run(content=content, style=style, **fields)


def _type_ok(value: Any, default: Any) -> bool:
    if default is None:  # learning_rate: a number, or None for the optimiser's default
        return value is None or _type_ok(value, 1.0)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, list):  # layer names, a comma-separated string, or name -> weight
        return isinstance(value, (list, tuple, str, dict))
    return isinstance(value, type(default))


def _check_run(values: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    problems = [
        f"{name} must be a {type(defaults[name]).__name__ if defaults[name] is not None else 'number'}"
        f", got {values[name]!r}"
        for name in defaults
        if not _type_ok(values[name], defaults[name])
    ]
    ratio = values.get("content_style_ratio")
    if ratio is not None and not (_type_ok(ratio, 1.0) and ratio > 0 and math.isfinite(ratio)):
        problems.append(f"content_style_ratio must be a number > 0, got {ratio!r}")
    if problems:
        return problems
    problems = _check_static(values)
    init = values["init"] if values["init"] in INITS else "content"  # files: inputs.py
    try:
        validate_run(to_api_run(values, 0, 0, init), 1, 1)
    except NstjaxError as e:
        problems.append(str(e))
    return problems


def expand(
    config: ml_collections.ConfigDict,
    contents: Sequence[str],
    styles: Sequence[str],
    content_shapes: Mapping[str, tuple[int, int]],
    output_shapes: Mapping[str, tuple[int, int]] | None = None,
) -> tuple[Expansion, list[str]]:
    """The runs of a (complete, see :func:`nstjax.sweep.config.resolve`) config.

    The one place where defaults, axes and presets are applied: the config's values, the axes'
    choices on top, then the preset's where the config left a field at its default and no axis
    chose it, resolved once at the run's real output shape.

    Args:
        config: the config.
        contents: the content image files (folders already listed), or keys of images.
        styles: the style image files, or keys.
        content_shapes: each content's ``(height, width)`` (from its header); a content
            missing here (unreadable: the inputs report it) gets no preset run fields.
        output_shapes: each content's output shape when the images are already at their output
            size (the Python API's arrays, a clip's frames): the preset's run fields are
            evaluated there instead of at ``data.size``.

    Returns:
        The expansion and a list of one-line problems (unknown or empty axes, zip lists of
        different lengths, bad values). The expansion is only meaningful when there are none.
    """
    problems: list[str] = []
    axes, zipped = _axes(config, problems)
    blend = stylize_fields.blend_weights(config, styles, problems)
    schedule = stylize_fields.schedule(config, problems)
    pairs = _run_pairs(config.data.pairing, contents, styles, blend, problems)
    if problems:
        return Expansion([], {}, []), problems

    fields = {**PER_RUN_FIELDS, **STATIC_FIELDS}
    base = {name: get(config, path) for name, path in fields.items()}
    defaults = {name: get(default_config(), path) for name, path in fields.items()}
    axis_names, zip_names = sorted(axes), sorted(zipped)
    zip_rows = list(zip(*(zipped[n] for n in zip_names))) if zip_names else [()]
    combos = list(itertools.product(pairs, *(axes[n] for n in axis_names), zip_rows))
    labels = _labels(pairs, {**axes, **zipped}, [*axis_names, *zip_names])
    varying = [name for name, values in labels.items() if len(set(values)) > 1]
    masks = tuple(str(m) for m in config.data.masks)

    width = max(4, len(str(len(combos) - 1)))
    runs = []
    for index, ((content, style), *rest) in enumerate(combos):
        chosen = {**dict(zip(axis_names, rest[:-1])), **dict(zip(zip_names, rest[-1]))}
        coords = {"content": value_label(content), "style": value_label(style)}
        coords.update({name: value_label(v) for name, v in chosen.items()})
        label = ", ".join(f"{n}={coords[n]}" for n in varying) or "run"
        shape_at = _shape_at(content_shapes.get(content), (output_shapes or {}).get(content))
        values, scales, found = _values(base, chosen, defaults, config.preset, shape_at, schedule)
        problems += [RunProblem(label, p) for p in found if p not in map(_text, problems)]
        run_id = f"{index:0{width}d}"
        runs.append(
            SweepRun(run_id, index, label, content, style, values, coords, blend, masks, scales)
        )
    return Expansion(runs, labels, varying), problems


def _run_pairs(pairing: str, contents, styles, blend, problems: list[str]) -> list[tuple]:
    """``(content, style)`` per run: the pairing's, or with a blend every content with all the
    styles (``style`` the tuple of them)."""
    if blend:
        return [(content, tuple(styles)) for content in contents]
    return _pairs(pairing, contents, styles, problems)


def _labels(pairs, lists: dict, names: list[str]) -> dict[str, list[str]]:
    """Axis name -> the labels of its values (``content`` and ``style`` first)."""
    return {
        "content": _unique([value_label(c) for c, _ in pairs]),
        "style": _unique([value_label(s) for _, s in pairs]),
        **{name: [value_label(v) for v in lists[name]] for name in names},
    }


def _text(problem: str) -> str:
    return getattr(problem, "text", problem)


class RunProblem(str):
    """A problem of one run, ``"run LABEL: TEXT"``; ``text`` is the problem alone (for a
    command that has one run and names its flags instead)."""

    def __new__(cls, label: str, text: str):
        problem = super().__new__(cls, f"run {label!r}: {text}")
        problem.text = text
        return problem


def _shape_at(content_shape, output_shape):
    """A run's output shape at a given longer side (``None``: unknown)."""
    if output_shape is not None:
        return lambda size: tuple(output_shape)
    if content_shape is None:
        return lambda size: None
    return lambda size: long_side_shape(content_shape, size)


def _axes(config, problems: list[str]) -> tuple[dict, dict]:
    """The product axes and the zipped group, with their problems appended."""
    axes = _axis_lists(config.sweep.axes, "sweep.axes", problems)
    zipped = _axis_lists(config.sweep.zip, "sweep.zip", problems)
    for name in sorted(set(axes) & set(zipped)):
        problems.append(f"{name}: both in sweep.axes and sweep.zip; put it in one of them")
    lengths = {name: len(v) for name, v in zipped.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{n} has {k}" for n, k in lengths.items())
        problems.append(f"sweep.zip: lists must have one length ({shown})")
    varied = set(axes) | set(zipped)
    if "content_style_ratio" in varied and "style_weight" in varied:
        problems.append("content_style_ratio and style_weight both vary; they set the same field")
    return axes, zipped


def _pairs(pairing: str, contents, styles, problems: list[str]) -> list[tuple[str, str]]:
    if pairing == "product":
        return list(itertools.product(contents, styles))
    if pairing == "zip":
        if len(contents) != len(styles):
            problems.append(
                f"data.pairing='zip' needs as many content as style images, got "
                f"{len(contents)} and {len(styles)}"
            )
        return list(zip(contents, styles))
    problems.append(f"data.pairing must be 'product' or 'zip', got {pairing!r}")
    return []


def _values(
    base: dict, chosen: dict, defaults: dict, preset: str, shape_at, schedule: tuple
) -> tuple[dict, tuple, list[str]]:
    """A run's values and schedule: the config's, with the axes' choices, a preset's values
    where the config left a field at its default, and a style weight derived from a
    content/style ratio."""
    from nstjax import preset_settings

    values = {**base, **{k: v for k, v in chosen.items() if k != "content_style_ratio"}}
    problems = _check_run({**values, **chosen}, defaults)
    if isinstance(values["init"], str) and values["init"] not in INITS:
        values["init"] = str(Path(values["init"]).resolve())  # an image file
    if problems:
        return values, schedule, problems
    explicit = _explicit(values, chosen, defaults)
    if schedule:
        explicit["multiscale"] = schedule
    try:
        if preset:
            schedule = _apply_preset(preset, values, explicit, shape_at)
        else:
            preset_settings.check_schedule(explicit)
    except NstjaxError as e:
        return values, schedule, [str(e)]
    if values["upscale_detail"] and not schedule:
        return values, schedule, [_ONE_SCALE_DETAIL]
    if "content_style_ratio" in chosen:
        weight = values["content_weight"] / chosen["content_style_ratio"]
        values["style_weight"] = float(f"{weight:.12g}")  # 1 / 1e-5 is 99999.99999999999
    return values, schedule, []


_ONE_SCALE_DETAIL = (
    "optim.upscale_detail: applies between the scales of a coarse-to-fine schedule "
    "(multiscale), and this run has one scale"
)


def _explicit(values: dict, chosen: dict, defaults: dict) -> dict:
    """The fields a preset governs that an axis chose or the config changed from its default."""
    from nstjax.presets import OPTION_NAMES, RUN_FIELDS

    fields = set(RUN_FIELDS) | (set(OPTION_NAMES) & set(values))
    explicit = {k: values[k] for k in fields if k in chosen or _differs(values[k], defaults.get(k))}
    if "content_style_ratio" in chosen:
        explicit["style_weight"] = values["style_weight"]  # set from the ratio afterwards
    return explicit


def _apply_preset(name: str, values: dict, explicit: dict, shape_at) -> tuple:
    """Fills ``values`` from the preset ``name`` where ``explicit`` does not set a field: its
    static options, then its run fields at the run's output shape (``shape_at(size)``), once.
    Returns the schedule (``()``: one scale)."""
    from nstjax import preset_settings

    options = preset_settings.static_settings(name, explicit)
    values.update({k: v for k, v in options.items() if k in values})
    schedule = tuple(options["multiscale"] or ())
    shape = shape_at(schedule[-1][0] if schedule else values["size"])
    if shape is not None:
        values.update(preset_settings.run_settings(name, shape, explicit))
    return schedule


def _differs(value: Any, default: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) != list(default)
    return value != default


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
