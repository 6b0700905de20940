"""The ``search`` section of a sweep config: what a hyperparameter search varies and optimises.

A search replaces the grid of ``sweep.axes`` by proposals of an Optuna sampler. Its fields::

    search.trials          trials in all (0: the config is a grid sweep, not a search)
    search.generation      trials per generation: one compiled batch of this many runs
    search.sampler         "tpe" | "random" | "qmc" (Sobol)
    search.seed            seeds the sampler
    search.space           field -> range: [low, high], [low, high, "log"] or [low, high, "int"];
                           fields: content_weight, style_weight, tv_weight, learning_rate,
                           noise_scale, seed, style_scale, and per-layer or per-loss weights as
                           content_layers / style_layers / style_loss -> {name: range}
    search.objective.weights   measure -> weight >= 0: the score maximised is
                               sum(weight * measure) over measures where higher is better minus
                               sum(weight * measure) over those where lower is better
    search.objective.bounds    measure -> [low, high] (either may be None): a trial outside is
                               infeasible (TPE learns the constraint; the best trial is feasible)
    search.prune.steps     steps at which a generation is halved: the runs are measured there
                           and all but the best ``keep`` fraction of those still running stop
    search.prune.keep      fraction of the running trials kept at each pruning step
    search.prune.measure   measure ranked at the pruning steps ("": the objective's score)
    search.storage         Optuna storage URL ("": sqlite:///DIR/search/search.db); an RDB URL
                           shared by processes on several hosts lets them share one study
    search.study           the study's name in the storage

Everything here is checked by :func:`parse` before anything compiles.
"""

import dataclasses
import math
from collections.abc import Mapping

import ml_collections

from nstjax.architecture import LAYER_NAMES
from nstjax.run import STYLE_LOSS_NAMES
from nstjax.sweep.config import STATIC_FIELDS, search_defaults  # noqa: F401  (re-exported)

SAMPLERS: tuple[str, ...] = ("tpe", "random", "qmc")
SCALES: tuple[str, ...] = ("linear", "log", "int")
SCALAR_FIELDS: dict[str, float] = {
    "content_weight": 0.0,
    "style_weight": 0.0,
    "tv_weight": 0.0,
    "learning_rate": 0.0,
    "noise_scale": 0.0,
    "seed": 0.0,
    "style_scale": 0.0,
}
"""The per-run scalar fields a search may range over -> the lowest value they accept (the
learning rate and the style scale must moreover be > 0)."""
POSITIVE_FIELDS: tuple[str, ...] = ("learning_rate", "style_scale")
MAPPING_FIELDS: dict[str, tuple[str, ...]] = {
    "content_layers": LAYER_NAMES,
    "style_layers": LAYER_NAMES,
    "style_loss": STYLE_LOSS_NAMES,
}
"""The per-run fields whose entries a search may weight: field -> the names allowed."""
OPEN_GROUPS: tuple[str, ...] = (
    "search.space",
    "search.objective.weights",
    "search.objective.bounds",
)


def quality_directions() -> dict[str, str]:
    """The quality measures an objective may name -> ``"max"`` or ``"min"``."""
    from nstjax import quality

    return {m.name: "max" if m.higher_is_better else "min" for m in quality.MEASURES}


@dataclasses.dataclass(frozen=True)
class Range:
    """One searched parameter: ``name`` is ``field`` or ``field.entry`` (a layer or a loss)."""

    name: str
    low: float
    high: float
    scale: str

    def distribution(self):
        """The Optuna distribution of this range."""
        import optuna

        if self.scale == "int":
            return optuna.distributions.IntDistribution(int(self.low), int(self.high))
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.scale == "log")


@dataclasses.dataclass(frozen=True)
class SearchSpec:
    """A checked ``search`` section.

    Attributes:
        trials, generation, sampler, seed, storage, study: as in the config.
        ranges: the searched parameters.
        weights: measure -> weight of the score.
        bounds: measure -> (low or None, high or None).
        directions: measure -> ``"max"`` or ``"min"`` (which way is better), for every measure.
        prune_steps: ascending steps at which a generation is halved.
        keep: fraction kept at each pruning step.
        prune_measure: the measure ranked there ("": the score).
    """

    trials: int
    generation: int
    sampler: str
    seed: int
    ranges: tuple[Range, ...]
    weights: dict[str, float]
    bounds: dict[str, tuple[float | None, float | None]]
    directions: dict[str, str]
    prune_steps: tuple[int, ...]
    keep: float
    prune_measure: str
    storage: str
    study: str

    @property
    def measures(self) -> list[str]:
        """The measures the search computes: the score's, the bounds', the pruning one's."""
        names = [*self.weights, *self.bounds, *([self.prune_measure] if self.prune_measure else [])]
        return list(dict.fromkeys(names))

    def score(self, values: Mapping[str, float]) -> float:
        """The score (maximised) of one trial's measure ``values``."""
        sign = {"max": 1.0, "min": -1.0}
        return float(sum(w * sign[self.directions[m]] * values[m] for m, w in self.weights.items()))

    def ranked(self, values: Mapping[str, float]) -> float:
        """What the pruning steps rank (higher is better)."""
        if not self.prune_measure:
            return self.score(values)
        sign = 1.0 if self.directions[self.prune_measure] == "max" else -1.0
        return sign * float(values[self.prune_measure])

    def constraints(self, values: Mapping[str, float]) -> dict[str, float]:
        """The bounds' constraint values of ``values``, by name (feasible iff all are <= 0, as
        Optuna's ``Trial.set_constraint``)."""
        out = {}
        for m, (low, high) in self.bounds.items():
            if low is not None:
                out[f"{m} >= {low:g}"] = float(low - values[m])
            if high is not None:
                out[f"{m} <= {high:g}"] = float(values[m] - high)
        return out


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _range(name: str, spec, lowest: float, positive: bool, problems: list[str]) -> Range | None:
    where = f"search.space.{name}"
    if not isinstance(spec, (list, tuple)) or len(spec) not in (2, 3):
        problems.append(f"{where}: expected [low, high] or [low, high, SCALE], got {spec!r}")
        return None
    low, high, *rest = spec
    scale = rest[0] if rest else "linear"
    if not (_number(low) and _number(high)):
        problems.append(f"{where}: low and high must be finite numbers, got {spec!r}")
        return None
    if scale not in SCALES:
        problems.append(f"{where}: scale must be one of {', '.join(SCALES)}, got {scale!r}")
        return None
    if low >= high:
        what = "empty" if low == high else "reversed"
        problems.append(f"{where}: {what} range [{low}, {high}] (low must be < high)")
        return None
    if scale == "log" and low <= 0:
        problems.append(f"{where}: a log range must be > 0, got [{low}, {high}]")
        return None
    if low < lowest or (positive and low <= 0):
        bound = "> 0" if positive else f">= {lowest:g}"
        problems.append(f"{where}: values must be {bound}, got [{low}, {high}]")
        return None
    if name == "seed" or scale == "int":
        if int(low) != low or int(high) != high:
            problems.append(f"{where}: an integer range needs integer bounds, got {spec!r}")
            return None
        scale = "int"
    return Range(name, float(low), float(high), scale)


def _ranges(space, problems: list[str]) -> tuple[Range, ...]:
    ranges = []
    for field in space.keys():
        spec = space[field]
        if field in STATIC_FIELDS:
            problems.append(
                f"search.space.{field}: a static field (it changes the compiled program) cannot "
                "be searched; set it in the config"
            )
        elif field in SCALAR_FIELDS:
            positive = field in POSITIVE_FIELDS
            ranges.append(_range(field, spec, SCALAR_FIELDS[field], positive, problems))
        elif field in MAPPING_FIELDS:
            if not isinstance(spec, (Mapping, ml_collections.ConfigDict)) or not spec:
                problems.append(f"search.space.{field}: expected name -> range, got {spec!r}")
                continue
            allowed = MAPPING_FIELDS[field]
            for entry in spec.keys():
                if entry not in allowed:
                    problems.append(
                        f"search.space.{field}.{entry}: unknown name (one of {', '.join(allowed)})"
                    )
                else:
                    ranges.append(_range(f"{field}.{entry}", spec[entry], 0.0, False, problems))
        else:
            known = ", ".join([*SCALAR_FIELDS, *MAPPING_FIELDS])
            problems.append(f"search.space.{field}: not a searchable field (fields: {known})")
    return tuple(r for r in ranges if r is not None)


def _objective(objective, directions: Mapping[str, str], problems: list[str]):
    known = ", ".join(directions)
    weights, bounds = {}, {}
    for name in objective.weights.keys():
        weight = objective.weights[name]
        if name not in directions:
            problems.append(f"search.objective.weights.{name}: unknown measure (measures: {known})")
        elif not _number(weight) or weight < 0:
            problems.append(f"search.objective.weights.{name}: weight must be >= 0, got {weight!r}")
        else:
            weights[name] = float(weight)
    if not problems and not any(weights.values()):
        problems.append("search.objective.weights: give at least one measure a weight > 0")
    for name in objective.bounds.keys():
        bound = objective.bounds[name]
        where = f"search.objective.bounds.{name}"
        if name not in directions:
            problems.append(f"{where}: unknown measure (measures: {known})")
            continue
        ok = isinstance(bound, (list, tuple)) and len(bound) == 2
        ok = ok and all(b is None or _number(b) for b in bound) and bound != [None, None]
        if not ok:
            problems.append(f"{where}: expected [low, high] (numbers or None), got {bound!r}")
        elif None not in bound and bound[0] > bound[1]:
            problems.append(f"{where}: reversed bounds {list(bound)}")
        else:
            bounds[name] = tuple(None if b is None else float(b) for b in bound)
    return weights, bounds


def _prune(prune, steps: int, directions: Mapping[str, str], problems: list[str]):
    marks = prune.steps
    ok = isinstance(marks, (list, tuple)) and all(
        isinstance(s, int) and not isinstance(s, bool) for s in marks
    )
    if not ok:
        problems.append(f"search.prune.steps: expected a list of integers, got {marks!r}")
        marks = []
    for s in marks:
        if not 1 <= s < steps:
            problems.append(
                f"search.prune.steps: step {s} is outside the runs' steps (1..{steps - 1}; "
                f"optim.steps is {steps})"
            )
    if list(marks) != sorted(set(marks)):
        problems.append(f"search.prune.steps: must be ascending without repeats, got {marks!r}")
    if not (_number(prune.keep) and 0 < prune.keep < 1):
        problems.append(f"search.prune.keep: must be in (0, 1), got {prune.keep!r}")
    if prune.measure and prune.measure not in directions:
        problems.append(
            f"search.prune.measure: unknown measure {prune.measure!r} "
            f"(measures: {', '.join(directions)})"
        )
    return tuple(marks)


def _counts(s, problems: list[str]) -> None:
    for name in ("trials", "generation"):
        value = s[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"search.{name}: must be an integer >= 1, got {value!r}")
    if s.sampler not in SAMPLERS:
        problems.append(f"search.sampler: must be one of {', '.join(SAMPLERS)}, got {s.sampler!r}")


def parse(
    config: ml_collections.ConfigDict, directions: Mapping[str, str]
) -> tuple[SearchSpec | None, list[str]]:
    """The search of a (complete) sweep config, and its problems.

    Args:
        config: a resolved sweep config (:func:`nstjax.sweep.config.resolve`).
        directions: the measures an objective may name -> ``"max"`` or ``"min"``.

    Returns:
        ``(None, [])`` when the config is no search (``search.trials`` is 0); else the spec (only
        meaningful without problems) and a list of one-line problems.
    """
    s = config.search
    if s.trials == 0:
        return None, []
    problems: list[str] = []
    _counts(s, problems)
    for group in ("axes", "zip"):
        if len(config.sweep[group].keys()):
            problems.append(
                f"sweep.{group}: a search takes its runs from search.space; leave it empty"
            )
    ranges = _ranges(s.space, problems)
    if not ranges and not problems:
        problems.append("search.space: no field to search")
    weights, bounds = _objective(s.objective, directions, problems)
    marks = _prune(s.prune, config.optim.steps, directions, problems)
    spec = SearchSpec(
        s.trials,
        s.generation,
        s.sampler,
        s.seed,
        ranges,
        weights,
        bounds,
        dict(directions),
        marks,
        s.prune.keep,
        s.prune.measure,
        s.storage,
        s.study,
    )
    return spec, problems


def parse_search(
    config: ml_collections.ConfigDict,
    measures: Mapping[str, str] | None,
    runs: int,
    problems: list[str],
) -> SearchSpec | None:
    """:func:`parse` for :func:`nstjax.sweep.prepare`: the measures default to the package's
    quality measures, a search needs exactly one run (one image pair), and the problems are
    appended to ``problems``."""
    if config.search.trials == 0:
        return None
    if measures is None:
        try:
            measures = quality_directions()
        except ImportError:
            problems.append("search: the quality measures (nstjax.quality) are not installed")
            return None
    spec, found = parse(config, measures)
    problems += found
    if runs > 1 and not found:
        problems.append(
            f"search: a search runs on one image pair; data.content x data.style give {runs}"
        )
    return spec


def too_small_to_measure(shape: tuple[int, int], style_shape: tuple[int, ...]) -> list[str]:
    """The problem of an output ``shape`` too small for the quality measures, or of a style
    image too small once at the output's long side (how the measures take it), if any."""
    from nstjax.quality.protocol import MIN_SIDE
    from nstjax.resample import long_side_shape

    style = long_side_shape(style_shape, max(shape))
    for what, (h, w) in (("output", shape), ("style image at the output's long side", style)):
        if min(h, w) < MIN_SIDE:
            return [
                f"data.size: the {what} ({h}x{w}) is smaller than the {MIN_SIDE} px a side the "
                "quality measures of a search need"
            ]
    return []
