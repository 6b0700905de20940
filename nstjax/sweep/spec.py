"""A sweep ready to run: its config completed and checked, its runs expanded, its images read.

:func:`prepare` does everything that can fail on bad input, before anything is compiled, and
reports every problem at once.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from nstjax.architecture import downsampling
from nstjax.batch import plan
from nstjax.errors import NstjaxError
from nstjax.image import image_shape
from nstjax.resample import long_side_shape
from nstjax.sweep import config as sweep_config
from nstjax.sweep import inputs as sweep_inputs
from nstjax.sweep.expand import Expansion, SweepRun, expand, to_api_run
from nstjax.sweep.expand import options_of as expand_options_of
from nstjax.sweep.report import sheet_axes
from nstjax.sweep.search_space import SearchSpec, parse_search, too_small_to_measure
from nstjax.validate import image_memory


@dataclasses.dataclass
class Sweep:
    """A checked sweep.

    Attributes:
        config: the complete config (every field, overrides applied).
        expansion: its runs and axes.
        inputs: its images.
        search: its ``search`` section, or None for a grid (:mod:`nstjax.sweep.search_space`).
    """

    config: ml_collections.ConfigDict
    expansion: Expansion
    inputs: sweep_inputs.Inputs
    search: SearchSpec | None = None

    @property
    def runs(self) -> list[SweepRun]:
        """Every run, in sweep order."""
        return self.expansion.runs

    def output_shape(self, run: SweepRun) -> tuple[int, int]:
        """A run's output ``(height, width)``: its content image at its ``size``."""
        return long_side_shape(self.inputs.images[run.content].shape, run.values["size"])

    def items(self) -> list[plan.Item]:
        """The runs as planner items: each :class:`nstjax.Run` names its images by key (content
        ``(path, size)``, style path) and carries its init image; the item's key is the
        :class:`SweepRun`."""
        images = self.inputs.images
        return [
            plan.Item(
                to_api_run(
                    r.values, (r.content, r.values["size"]), r.style, images.get(r.values["init"])
                ),
                self.output_shape(r),
                r,
            )
            for r in self.runs
        ]

    def record(self) -> dict[str, Any]:
        """What identifies the sweep (``config.json``): the config and the resolved inputs."""
        return {
            "config": self.config.to_dict(),
            "inputs": {"content": self.inputs.contents, "style": self.inputs.styles},
        }


def _check_sweep_fields(config: ml_collections.ConfigDict) -> list[str]:
    s = config.sweep
    problems = []
    if s.save_every < 0:
        problems.append(f"sweep.save_every must be >= 0, got {s.save_every}")
    if s.chunk < 1:
        problems.append(f"sweep.chunk must be >= 1, got {s.chunk}")
    if s.contact_sheet.cell < 8:
        problems.append(f"sweep.contact_sheet.cell must be >= 8, got {s.contact_sheet.cell}")
    if s.run_memory_mb < 0:
        problems.append(f"sweep.run_memory_mb must be >= 0, got {s.run_memory_mb}")
    if s.checkpoint_every < 0:
        problems.append(f"sweep.checkpoint_every must be >= 0, got {s.checkpoint_every}")
    for path in ("data.style_blend", "data.masks", "optim.multiscale"):
        if list(sweep_config.get(config, path)):
            problems.append(
                f"{path}: blends, masks and coarse-to-fine schedules run with nstjax stylize; "
                "a sweep runs each content x style pair at one data.size"
            )
    if sweep_config.get(config, "optim.upscale_detail") or "upscale_detail" in {
        *s.axes.keys(),
        *s.zip.keys(),
    }:
        problems.append(
            "optim.upscale_detail: applies between the scales of a coarse-to-fine schedule, "
            "which runs with nstjax stylize; a sweep runs one data.size"
        )
    if not 0 <= s.checkpoint_minutes < float("inf"):
        problems.append(
            f"sweep.checkpoint_minutes must be a number >= 0, got {s.checkpoint_minutes}"
        )
    return problems


def _too_small(sweep: "Sweep") -> list[str]:
    """Images too small for the deepest layer computed: VGG's 2x2 poolings would leave nothing
    (and a Gram of nothing is NaN). The deepest layer of a group counts for all its runs, since
    a batch computes every layer any of its runs uses."""
    problems = []
    options_of = lambda item: expand_options_of(item.key.values)
    for group in plan.group(sweep.items(), options_of, "xla"):
        try:
            plan.check_large_enough(group)
        except NstjaxError as e:
            problems.append(f"{e} (data.size)")
        need = downsampling(plan.deepest_layer(group.program.layers))
        deepest = plan.deepest_layer(group.program.layers)
        for item in group.items:
            run = item.key
            style = sweep.inputs.images[run.style].shape
            long_side = max(1, round(run.values["style_scale"] * max(group.shape)))
            h, w = long_side_shape(style, long_side)
            try:
                image_memory([(h, w)], "data.style_scale", run.values["style_scale"])
            except NstjaxError as e:
                problems.append(str(e))
                continue
            if min(h, w) < need:
                problems.append(
                    f"style image {Path(run.style).name} at {h}x{w} is too small for {deepest} "
                    f"(each side needs >= {need} px); raise data.size or data.style_scale"
                )
    return list(dict.fromkeys(problems))


def _header_shapes(paths: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Each readable image's ``(height, width)`` from its header (an unreadable one is left out:
    reading the inputs reports it)."""
    shapes = {}
    for path in paths:
        try:
            shapes[path] = image_shape(path, "content image")
        except NstjaxError:
            pass
    return shapes


def prepare(
    config: ml_collections.ConfigDict,
    problems: Sequence[str] = (),
    measures: Mapping[str, str] | None = None,
) -> Sweep:
    """Completes, checks and expands a sweep config and reads its images.

    Args:
        config: a sweep config (from :func:`nstjax.config.load_config`).
        problems: problems found earlier (bad ``--config.FIELD`` overrides), reported with the
            rest.
        measures: the measures a search's objective may name -> ``"max"`` or ``"min"``
            (default: the package's quality measures).

    Returns:
        The sweep.

    Raises:
        NstjaxError: listing every problem found: unknown fields, values of the wrong type,
            unknown or empty axes, zip lists of different lengths, bad hyperparameters, missing
            files or folders, unreadable images.
    """
    config, found = sweep_config.resolve(config)
    problems = [*problems, *found, *_check_sweep_fields(config)]
    contents = sweep_inputs.list_files(config.data.content, "content image", problems)
    styles = sweep_inputs.list_files(config.data.style, "style image", problems)
    expansion, more = expand(config, contents, styles, _header_shapes(contents))
    problems += more
    search = parse_search(config, measures, len(expansion.runs), problems)
    inits = [run.values["init"] for run in expansion.runs]
    inputs = sweep_inputs.load(contents, styles, inits, problems)
    if not problems and not expansion.runs:
        problems.append("the sweep has no runs")
    if expansion.runs:
        try:
            sheet_axes(expansion, config.sweep.contact_sheet.rows, config.sweep.contact_sheet.cols)
        except NstjaxError as e:
            problems.append(str(e))
    if not problems:
        problems += _too_small(Sweep(config, expansion, inputs))
    if not problems and search is not None and measures is None:
        run = expansion.runs[0]
        shape = Sweep(config, expansion, inputs).output_shape(run)
        problems += too_small_to_measure(shape, inputs.images[run.style].shape)
    if problems:
        count = f"{len(problems)} problems" if len(problems) > 1 else "a problem"
        raise NstjaxError(f"the sweep config has {count}: " + "; ".join(problems))
    return Sweep(config, expansion, inputs, search)
