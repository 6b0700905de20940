"""A search against a grid of as many runs, on the same objective (docs/sweeps.md).

    python scripts/search_vs_grid.py --runs 12 --steps 50 --workdir /tmp/search_vs_grid

Both start from ``configs/search_style.py`` (one pair at 64 px, the objective content fidelity +
global effects + local patterns). The grid is what one would write by hand: ``style_weight`` x
``tv_weight`` over the search's ranges (log-spaced), the five style layers at equal weights. The
search is TPE over the config's seven settings (those two and the five layer weights) in
generations of ``--generation``, without pruning (so both sides run every run to the end). Prints
a Markdown table: the best objective each found, its measures, and the wall time.
"""

import argparse
import dataclasses
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from nstjax import api, quality, vgg
from nstjax.config import load_config
from nstjax.quality.of_results import reference_style
from nstjax.sweep import prepare
from nstjax.sweep.expand import options_of
from nstjax.sweep.search import run_search

MEASURES = ["content_fidelity", "global_effects", "local_patterns"]


def grid_values(low: float, high: float, n: int) -> list[float]:
    return [float(f"{v:.3g}") for v in np.geomspace(low, high, n)]


def run_grid(config, spec, params, runs: int):
    """The grid's best score (``spec.score``) and its measures, and its wall time."""
    ranges = {r.name: r for r in spec.ranges}
    rows = max(1, round(math.sqrt(runs)))
    cols = runs // rows
    beta, tv = ranges["style_weight"], ranges["tv_weight"]
    with config.unlocked():
        config.search.trials = 0
        config.sweep.axes.style_weight = grid_values(beta.low, beta.high, cols)
        config.sweep.axes.tv_weight = grid_values(tv.low, tv.high, rows)
    sweep = prepare(config)
    items = sweep.items()
    start = time.perf_counter()
    (run, *_) = [i.run for i in items]  # one pair: index its images as 0
    content = sweep.inputs.content_at(*run.content)
    style = sweep.inputs.images[run.style]
    reference = reference_style(style, content.shape)  # as the search (and Result.quality)
    results = api.stylize_batch(
        params,
        [content],
        [style],
        [dataclasses.replace(i.run, content=0, style=0) for i in items],
        options_of(items[0].key.values, config.sweep.chunk),
        batch_size=len(items),
    )
    outputs = np.stack([r.image for r in results])
    contents = np.repeat(content[None], len(items), axis=0)
    values = quality.measure(params, outputs, contents, [reference] * len(items), names=MEASURES)
    wall = time.perf_counter() - start
    scores = [spec.score({m: values[m][k] for m in MEASURES}) for k in range(len(items))]
    best = int(np.argmax(scores))
    return scores[best], {m: float(values[m][best]) for m in MEASURES}, items[best].key.label, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=12, help="runs on each side")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--generation", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument(
        "--workdir", required=True, help="the search's workdir (an earlier search there is deleted)"
    )
    args = parser.parse_args()

    def config():
        c = load_config("configs/search_style.py")
        c.data.size, c.optim.steps, c.sweep.chunk = args.size, args.steps, args.steps
        c.search.trials, c.search.generation = args.runs, args.generation
        c.search.prune.steps = []
        return c

    params = vgg.load_params()
    sweep = prepare(config())
    workdir = Path(args.workdir)
    if (workdir / "search" / "search.db").exists():  # an earlier run of this script: start afresh
        shutil.rmtree(workdir)
    start = time.perf_counter()
    outcome = run_search(sweep, args.workdir, params, overwrite=True, mesh=None)
    search_wall = time.perf_counter() - start
    grid_score, grid_measures, grid_label, grid_wall = run_grid(
        config(), sweep.search, params, args.runs
    )
    best = outcome.best
    print(f"\n{args.runs} runs each, {args.size} px, {args.steps} Adam steps\n")
    print("| | best objective | CF | GE | LP | wall s | best setting |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, score, m, wall, label in [
        ("grid", grid_score, grid_measures, grid_wall, grid_label),
        (
            "search (TPE)",
            best["objective"],
            best["measures"],
            search_wall,
            f"trial {best['trial']}",
        ),
    ]:
        cells = " | ".join(f"{m[k]:.3f}" for k in MEASURES)
        print(f"| {name} | {score:.3f} | {cells} | {wall:.0f} | {label} |")
    print(f"\nsearch best parameters: {best['params']}")


if __name__ == "__main__":
    from nstjax.errors import run_script

    sys.exit(run_script(main))
