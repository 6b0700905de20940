"""Time to quality: Wang et al.'s measures (CF, GE, LP) of a recipe's image against wall time.

A *recipe* is a way to make one stylised image: nstjax's default objective at one scale (Adam,
all steps at the output size), the same coarse to fine (:func:`nstjax.run.coarse_to_fine`;
not a default: docs/benchmarks.md, Time to quality), neural-style's objective (its weights at the output's
shape, in nstjax's normalisation: the same loss) coarse to fine with nstjax's Adam from the
content (``nstjax-c2f-ns``), the same with L-BFGS (nstjax's strong-Wolfe line search,
``lbfgs_wolfe``) from the content (``nstjax-c2f-lbfgs``) or from neural-style's near-flat noise
(``nstjax-c2f-lbfgs-noise``), the first with each later scale starting from the upsampled image
plus the content's detail between the scales (``nstjax-c2f-lbfgs-detail``,
:attr:`nstjax.Run.upscale_detail` 1), the ``crowsonkb`` preset (its sqrt(2) scales and iterate
averaging), and neural-style's default recipe run by the PyTorch reference in its own process
(:mod:`nstjax.bench.ttq_torch`; L-BFGS, history 100, from its near-flat random image). Each
recipe keeps snapshots of its image at checkpoints with the seconds since it started (nstjax: the
whole call, targets and compilation included, every recipe compiling its programs afresh
(``jax.clear_caches``), the last snapshot the call's output at its end; PyTorch: targets and
iterations, the model load excluded); the snapshots are measured afterwards, untimed, each
against the same content and style (:func:`nstjax.quality.measure`; a snapshot from a coarser
scale is resized to the output first, as the next scale would). Recipes run one after another on each pair, in an order rotated
each round, so that a shared machine's load falls on all of them alike.

``budget`` scales every recipe's iteration counts (1: the recipes as their sources give them).
"""

import dataclasses
import time
from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np

from nstjax import preset_run, presets
from nstjax.execute import Observer
from nstjax.resample import resize
from nstjax.run import Options, Run, coarse_to_fine

MEASURES = ("content_fidelity", "global_effects", "local_patterns")
SHORT = {"content_fidelity": "CF", "global_effects": "GE", "local_patterns": "LP"}
CF_MARGIN = 0.02
"""A recipe matches the reference's content fidelity when within this of it (issue 23)."""
RECIPES = (
    "nstjax",
    "nstjax-c2f",
    "nstjax-c2f-ns",
    "nstjax-c2f-lbfgs",
    "nstjax-c2f-lbfgs-noise",
    "nstjax-c2f-lbfgs-detail",
    "crowsonkb",
    "neural-style-torch",
)
REFERENCE = "neural-style-torch"
NEURAL_STYLE_HISTORY = 100
"""neural-style's L-BFGS history (presets.neural_style's lbfgs_history)."""


class Recipe(NamedTuple):
    """One recipe at one output shape: ``schedule`` is ``((size, steps), ...)``; ``run`` and
    ``options`` are nstjax's (for the PyTorch recipe, ``run`` carries the objective)."""

    name: str
    schedule: tuple[tuple[int, int], ...]
    run: Run
    options: Options | None

    @property
    def steps(self) -> int:
        return sum(steps for _, steps in self.schedule)


def crowsonkb_scales(end: int, start: int = 128) -> list[int]:
    """crowsonkb's ``gen_scales``: ``round(end / 2^(i/2))`` for ``i = 0, 1, ...`` down to
    ``min(start, end)``, growing (:data:`nstjax.presets.CROWSONKB_SCALES` at 512)."""
    start = min(start, end)
    scales, i = set(), 0
    while (scale := round(end / 2 ** (i / 2))) >= start:
        scales.add(scale)
        i += 1
    return sorted(scales)


def _scaled(steps: int, budget: float) -> int:
    return max(1, round(steps * budget))


def make_recipes(
    shape: tuple[int, int], budget: float = 1.0, min_scale: int = 128, every: int = 50
) -> dict[str, Recipe]:
    """The recipes of :data:`RECIPES` for an output of ``shape``.

    Args:
        shape: the output's ``(height, width)``.
        budget: multiplies every iteration count.
        min_scale: the crowsonkb recipe's first size (its 128; at most the output's size).
        every: steps between snapshots of the nstjax recipes (their ``Options.chunk``);
            crowsonkb's, with more steps in all, are as many, further apart.
    """
    size = max(shape)
    default = Options()
    steps = _scaled(default.steps, budget)
    chunked = dataclasses.replace(default, steps=steps, chunk=every)
    c2f = coarse_to_fine(size, steps)
    made = preset_run.make("crowsonkb", shape)
    _, *rest = presets.CROWSONKB_SCALES  # 1000 iterations at the first scale, then each rest's
    scales = crowsonkb_scales(size, min_scale)
    counts = [presets.CROWSONKB_SCALES[0][1]] + [rest[0][1]] * (len(scales) - 1)
    ck = tuple((s, _scaled(n, budget)) for s, n in zip(scales, counts))
    ck_every = max(1, round(every * sum(n for _, n in ck) / steps))  # as many snapshots
    neural = presets.preset_values("neural-style", shape)
    ns_run = Run(**{k: v for k, v in neural.run.items()})
    ns_steps = _scaled(neural.options["steps"], budget)
    ns_objective = dataclasses.replace(ns_run, init="content", learning_rate=None)
    lbfgs = dataclasses.replace(chunked, optimizer="lbfgs_wolfe")
    ns_noise = dataclasses.replace(ns_objective, init=ns_run.init)
    detailed = dataclasses.replace(ns_objective, upscale_detail=1.0)
    return {
        "nstjax": Recipe("nstjax", ((size, steps),), Run(), chunked),
        "nstjax-c2f": Recipe("nstjax-c2f", c2f, Run(), chunked),
        "nstjax-c2f-ns": Recipe("nstjax-c2f-ns", c2f, ns_objective, chunked),
        "nstjax-c2f-lbfgs": Recipe("nstjax-c2f-lbfgs", c2f, ns_objective, lbfgs),
        "nstjax-c2f-lbfgs-noise": Recipe("nstjax-c2f-lbfgs-noise", c2f, ns_noise, lbfgs),
        "nstjax-c2f-lbfgs-detail": Recipe("nstjax-c2f-lbfgs-detail", c2f, detailed, lbfgs),
        "crowsonkb": Recipe(
            "crowsonkb", ck, made.run, dataclasses.replace(made.options, chunk=ck_every)
        ),
        REFERENCE: Recipe(REFERENCE, ((size, ns_steps),), ns_run, None),
    }


class _Snapshots(Observer):
    """Keeps ``(step, seconds, image)`` at every chunk of a one-run call."""

    def __init__(self, start: float):
        self.start, self.kept = start, []

    def chunk_done(self, batch, steps, metrics, images):
        image = np.asarray(images()[0])
        seconds = time.perf_counter() - self.start
        self.kept.append({"step": batch.first_step + steps, "seconds": seconds, "image": image})


def run_nstjax(params, content: np.ndarray, style: np.ndarray, recipe: Recipe) -> list[dict]:
    """Runs an nstjax recipe on one pair; returns its snapshots (see the module docstring)."""
    from nstjax.api import stylize_batch
    from nstjax.resample import resize_long_side
    from nstjax.schedule import stylize_multiscale

    jax.clear_caches()  # every recipe compiles its own programs, whatever ran before it
    start = time.perf_counter()
    observer = _Snapshots(start)
    if len(recipe.schedule) > 1:
        (result,) = stylize_multiscale(
            params, [content], [style], [recipe.run], recipe.schedule, recipe.options,
            observer=observer,
        )  # fmt: skip
    else:
        ((size, steps),) = recipe.schedule
        options = dataclasses.replace(recipe.options, steps=steps)
        (result,) = stylize_batch(
            params, [resize_long_side(content, size)], [style], [recipe.run], options,
            observer=observer,
        )  # fmt: skip
    last = observer.kept[-1]  # the call's end and its output (an average of iterates, for some)
    last.update(seconds=time.perf_counter() - start, image=np.asarray(result.image))
    return observer.kept


def run_reference(
    h5: str, content, style, recipe: Recipe, checkpoints, threads: int, device: str = "cpu"
) -> list[dict]:
    """Runs the PyTorch recipe on one pair (:func:`nstjax.bench.ttq_torch.run_torch_recipe`)."""
    from nstjax.bench.ttq_torch import run_torch_recipe
    from nstjax.init import gaussian_noise
    from nstjax.quality.of_results import reference_style
    from nstjax.weights import CAFFE_PREPROCESS

    init = gaussian_noise(content.shape[:2], recipe.run.seed, recipe.run.noise_scale)
    images = {"content": content, "style": reference_style(style, content.shape), "init": init}
    return run_torch_recipe(
        h5, CAFFE_PREPROCESS, images, recipe.run, NEURAL_STYLE_HISTORY, checkpoints, threads, device
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    """What one benchmark run measures (the script's flags).

    Attributes:
        size: the output's longer side.
        budget: multiplies every recipe's iteration counts.
        checkpoints: snapshots per recipe (about).
        recipes: names from :data:`RECIPES`.
        rounds: each recipe's runs per pair, in an order rotated each round.
        min_scale: the crowsonkb recipe's first size.
        threads: PyTorch's threads.
        device: PyTorch's device (``"cpu"``, ``"cuda"``).
    """

    size: int = 512
    budget: float = 1.0
    checkpoints: int = 10
    recipes: tuple[str, ...] = RECIPES
    rounds: int = 1
    min_scale: int = 128
    threads: int = 1
    device: str = "cpu"


def run_pair(
    params, h5: str, content, style, label: str, settings: Settings, known: dict | None = None
) -> dict:
    """Every recipe of ``settings`` on one pair, ``settings.rounds`` times, alternated.

    Args:
        params: VGG-19 parameters (nstjax's side and the measures).
        h5: the same weights' ``.h5`` (the PyTorch side reads it).
        content: ``[H, W, 3]`` in [0, 1] at the output size.
        style: ``[h, w, 3]`` in [0, 1].
        label: the pair's name in the records.
        settings: the run's :class:`Settings`.
        known: recipes already measured on this pair (``{name: [record per round]}``, from an
            earlier run's JSON with the same settings): kept, not run again.

    Returns:
        ``{"label", "recipes": {name: [{"schedule", "points"}] per round}}``.
    """
    every = max(1, round(Options().steps * settings.budget / settings.checkpoints))
    recipes = make_recipes(content.shape[:2], settings.budget, settings.min_scale, every)
    names, runs = list(settings.recipes), {}
    for r in range(settings.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            recipe = recipes[name]
            if known and name in known:
                runs.setdefault(name, []).append(known[name][r])
                continue
            print(f"[{label} round {r}] {name}: {recipe.schedule}", flush=True)
            if name == REFERENCE:
                marks = checkpoints_of(recipe.steps, settings.checkpoints)
                args = (h5, content, style, recipe, marks, settings.threads, settings.device)
                kept = run_reference(*args)
            else:
                kept = run_nstjax(params, content, style, recipe)
            points = score_snapshots(params, kept, content, style)
            last = points[-1]
            print(f"  {last['seconds']:.1f} s, {last['step']} steps, " + ", ".join(
                f"{SHORT[m]} {last[m]:.3f}" for m in MEASURES), flush=True)  # fmt: skip
            runs.setdefault(name, []).append({"schedule": recipe.schedule, "points": points})
    return {"label": label, "recipes": {n: runs[n] for n in names}}


def checkpoints_of(steps: int, count: int) -> list[int]:
    """``count`` growing iteration counts spread over ``steps`` (the last is ``steps``)."""
    return sorted({max(1, round(steps * (i + 1) / count)) for i in range(count)})


def score_snapshots(params, snapshots: list[dict], content, style) -> list[dict]:
    """Each snapshot's step, seconds and :data:`MEASURES` (the image resized to the content's
    shape when it is from a coarser scale)."""
    from nstjax.quality import measure
    from nstjax.quality.of_results import reference_style

    shape = content.shape[:2]
    images = [
        s["image"] if s["image"].shape[:2] == shape else resize(s["image"], shape)
        for s in snapshots
    ]
    values = measure(
        params, np.stack(images), np.stack([content] * len(images)),
        [reference_style(style, content.shape)] * len(images), names=MEASURES,
    )  # fmt: skip
    return [
        {"step": s["step"], "seconds": s["seconds"], **{m: float(values[m][i]) for m in MEASURES}}
        for i, s in enumerate(snapshots)
    ]


def time_to(points: Sequence[dict], reference: dict) -> dict[str, float | None]:
    """The first snapshot's seconds at which each criterion holds (``None``: never):
    ``GE``/``LP`` at least the reference's, ``CF`` within :data:`CF_MARGIN` of it (or above),
    and ``all`` three at once."""
    tests = {
        "GE": lambda p: p["global_effects"] >= reference["global_effects"],
        "LP": lambda p: p["local_patterns"] >= reference["local_patterns"],
        "CF": lambda p: p["content_fidelity"] >= reference["content_fidelity"] - CF_MARGIN,
    }
    tests["all"] = lambda p: all(test(p) for test in list(tests.values())[:3])
    return {
        name: next((p["seconds"] for p in points if test(p)), None) for name, test in tests.items()
    }


def summary_rows(pairs: Sequence[dict]) -> list[dict]:
    """One row per pair, recipe and round: final measures, total seconds, the times of
    :func:`time_to` against the reference's final snapshot (of the same round), and the
    reference's total seconds over the time to ``all``."""
    rows = []
    for pair in pairs:
        for r, rounds in enumerate(zip(*(pair["recipes"][n] for n in pair["recipes"]))):
            by_name = dict(zip(pair["recipes"], rounds))
            ref = by_name[REFERENCE]["points"][-1] if REFERENCE in by_name else None
            ref_total = ref["seconds"] if ref else None
            for name, result in by_name.items():
                points = result["points"]
                times = time_to(points, ref) if ref else {}
                speedup = ref_total / times["all"] if times.get("all") else None
                rows.append(
                    {"pair": pair["label"], "round": r, "recipe": name, "steps": points[-1]["step"],
                     "seconds": points[-1]["seconds"], **{SHORT[m]: points[-1][m] for m in MEASURES},
                     **{f"time_to_{k}": v for k, v in times.items()}, "speedup_to_all": speedup,
                     "from": result.get("from")}
                )  # fmt: skip
    return rows


def _cell(value, digits: int = 1) -> str:
    if value is None:
        return "never"
    return f"{value:.{digits}f}"


def markdown_table(rows: Sequence[dict]) -> str:
    """The summary as a Markdown table (times in seconds; ``never``: not reached; ``n/a``: no
    reference on the pair)."""
    lines = [
        "| pair | round | recipe | steps | total s | CF | GE | LP | s to GE | s to LP | "
        "s to CF-0.02 | s to all | reference s / s to all |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            row["pair"],
            str(row["round"]),
            row["recipe"] + (f" (from {row['from']})" if row.get("from") else ""),
            str(row["steps"]),
            _cell(row["seconds"]),
        ]
        cells += [f"{row[k]:.3f}" for k in ("CF", "GE", "LP")]
        if "time_to_all" not in row:  # no reference on this pair: nothing to reach
            cells += ["n/a"] * 5
        else:
            cells += [_cell(row[f"time_to_{k}"]) for k in ("GE", "LP", "CF", "all")]
            speedup = row["speedup_to_all"]
            cells.append(_cell(speedup, 2) + ("x" if speedup else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
