"""Strong-Wolfe L-BFGS against fixed-step L-BFGS for the same number of loss/gradient evaluations.

The default stylisation (``nstjax.Run()``'s weights and layers, content initialisation, max
pooling, 20 curvature pairs, learning rate 1) of tubingen.jpg in the style of starry_night.jpg
at 256 px, with the real VGG-19: one run of ``lbfgs`` (step 1, one evaluation per step), one of
``lbfgs_wolfe`` (strong-Wolfe line search, first trial step ``f / |g|^2``, then 1) and one of
``lbfgs_wolfe_torch`` (torch's line search and first trial step ``1 / |g|_1``), each one call
of :func:`nstjax.api.stylize_batch` (a batch of one, the kernels ``nstjax stylize`` chooses),
one after the other in this process. Writes ``lbfgs_linesearch.png`` (loss against
evaluations) and ``lbfgs_linesearch.md`` (the loss at a few evaluation counts, the cost per step
and per evaluation against the fixed step) to ``--workdir``. ``--pairs`` repeats the comparison
on other content/style pairs (one table row block each). ``--first-trials`` instead prints the
loss and slope at candidate first trial steps along ``-g`` from the starting point (how the
first-step rule was chosen).

The loss after ``e`` evaluations is the lowest loss known after ``e`` evaluations: for the fixed
step, step ``k``'s evaluation is the ``k + 1``-th, of the pixels after ``k`` steps; for the line
search, the evaluations of step ``k`` end at the pixels after ``k + 1`` steps.

    NSTJAX_WEIGHTS=... python scripts/lbfgs_linesearch.py --size 256 --evaluations 100
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import _figures
import jax
import jax.numpy as jnp
import numpy as np

from nstjax import Options, Run, api, engine, execute, vgg
from nstjax.batch import build, plan


class _Clock(execute.Observer):
    """When each chunk of steps ended."""

    def __init__(self):
        self.stamps: list[tuple[int, float]] = []

    def chunk_done(self, batch, steps, metrics, images):
        self.stamps.append((steps, time.perf_counter()))


def optimise(params, content, style, optimizer: str, steps: int):
    """One run's :class:`~nstjax.execute.Result` and its seconds per step after the first chunk
    (compilation)."""
    clock = _Clock()
    start = time.perf_counter()
    [result] = api.stylize_batch(
        params,
        [content],
        [style],
        [Run()],
        optimizer=optimizer,
        steps=steps,
        chunk=10,
        observer=clock,
    )
    (d0, t0), (d1, t1) = clock.stamps[0], clock.stamps[-1]
    print(f"{optimizer}: {steps} steps in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    return result, (t1 - t0) / (d1 - d0)


def loss_at_evaluations(loss, evaluations, line_search: bool):
    """``(evaluations so far, loss known then)`` per step, from one run's ``[steps]`` rows."""
    used = np.cumsum(evaluations)
    if line_search:  # step k's evaluations end at the pixels of step k + 1 (history row k + 1)
        return np.concatenate([[1], used[:-1]]), loss
    return used, loss  # step k's one evaluation is of its own pixels (row k)


def best_within(curve, budget):
    used, loss = curve
    return float(np.min(loss[used <= budget]))


OPTIMISERS = ("lbfgs", "lbfgs_wolfe", "lbfgs_wolfe_torch")
LABELS = {
    "lbfgs": "L-BFGS, fixed step 1",
    "lbfgs_wolfe": "L-BFGS, strong Wolfe, first trial f/(g.g)",
    "lbfgs_wolfe_torch": "L-BFGS, strong Wolfe, first trial 1/sum(abs(g)) (torch)",
}


def first_trials(params, content, style) -> None:
    """Prints the loss and slope along ``-g`` at the first trial step of each candidate rule."""
    options = execute.with_convolution(Options(optimizer="lbfgs"))
    program = plan.program_for([Run()], options, options.convolution)
    params = vgg.prepare(params, program.convolution)
    built = build.build(params, program, [Run()], [content], [style])
    one = jax.tree.map(lambda x: x[0], (built.hyper, built.targets))
    value_and_grad = jax.jit(
        jax.value_and_grad(lambda p: engine.run_loss(params, program, p, *one)[0])
    )
    pixels = built.pixels[0]
    f, g = value_and_grad(pixels)
    f, g = float(f), np.asarray(g, np.float64)
    l1, largest, squared = np.abs(g).sum(), np.abs(g).max(), (g**2).sum()
    rules = {"torch 1/sum(abs(g))": 1 / l1, "f/(g.g)": f / squared, "2f/(g.g)": 2 * f / squared}
    rules.update({f"{k}/max(abs(g))": k / largest for k in (1, 3, 10, 30, 100)})
    rows = []
    for rule, t in sorted(rules.items(), key=lambda item: item[1]):
        f_t, g_t = value_and_grad(jnp.asarray(pixels - t * g, jnp.float32))
        slope = float(np.asarray(g_t, np.float64).ravel() @ g.ravel()) / squared
        row = [rule, f"{t:.3g}", f"{t * largest:.3g}", f"{float(f_t) / f:.3f}", f"{slope:.3f}"]
        rows.append(row)
    header = ["rule", "t", "largest pixel change", "f(t) / f(0)", "g(t).g / g.g"]
    print(_figures.markdown_table(header, rows))


def compare(params, content, style, optimizers, evaluations):
    """Each optimiser's loss curve, seconds per step and evaluations per step on one pair."""
    curves, seconds, evals = {}, {}, {}
    for name in dict.fromkeys(["lbfgs", *optimizers]):
        # One evaluation per fixed step; the line search needs about 1.01-1.1 per step once its
        # memory has filled: the budget of steps leaves it at least the same evaluations.
        steps = evaluations if name == "lbfgs" else evaluations + 1
        result, seconds[name] = optimise(params, content, style, name, steps)
        evals[name] = result.step_evaluations
        curves[name] = loss_at_evaluations(result.history[:, 0], evals[name], name != "lbfgs")
    return curves, seconds, evals


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--evaluations", type=int, default=100, help="loss/gradient evaluations")
    p.add_argument("--content", type=Path, default=_figures.SHARED_IMAGES / "tubingen.jpg")
    p.add_argument("--style", type=Path, default=_figures.SHARED_IMAGES / "starry_night.jpg")
    p.add_argument(
        "--pairs",
        nargs="*",
        default=[],
        metavar="CONTENT:STYLE",
        help="more pairs of file names under ../shared/images, compared after the first",
    )
    p.add_argument("--weights", default=None, help="VGG-19 weights (default: $NSTJAX_WEIGHTS)")
    p.add_argument("--workdir", type=Path, default=Path("reproductions"))
    p.add_argument("--first-trials", action="store_true", help="probe first trial steps only")
    p.add_argument(
        "--optimizers", nargs="+", choices=OPTIMISERS, default=list(OPTIMISERS), help="lbfgs first"
    )
    args = p.parse_args(argv)
    params = _figures.load_params(args.weights)
    content, style = _figures.load(args.content, args.size), _figures.load(args.style, args.size)
    if args.first_trials:
        first_trials(params, content, style)
        return 0
    pairs = [(args.content, args.style)]
    pairs += [tuple(_figures.SHARED_IMAGES / n for n in pair.split(":")) for pair in args.pairs]
    compared = []
    for c, s in pairs:
        loaded = _figures.load(c, args.size), _figures.load(s, args.size)
        compared.append(
            (c, s, loaded[0].shape, *compare(params, *loaded, args.optimizers, args.evaluations))
        )
    write(args, compared)
    return 0


def _table(args, curves, seconds, evals) -> str:
    budgets = [b for b in (10, 25, 50, 100, 200, 300, 500) if b <= args.evaluations]
    rows = []
    for name in curves:
        per_step = float(np.mean(evals[name][1:]))
        rows.append(
            [LABELS[name]]
            + [f"{best_within(curves[name], b):.5g}" for b in budgets]
            + [f"{int(evals[name][0])}", f"{per_step:.2f} (max {int(evals[name][1:].max())})"]
            + [f"{seconds[name]:.2f}", f"{seconds[name] / seconds['lbfgs']:.2f}"]
            + [f"{seconds[name] / per_step / seconds['lbfgs']:.2f}"]
        )
    header = ["optimiser", *(f"loss @ {b} evals" for b in budgets)]
    header += ["evaluations at step 0", "evaluations per step (after step 0)", "s/step"]
    header += ["s/step vs fixed", "s/evaluation vs fixed"]
    return _figures.markdown_table(header, rows)


def write(args, compared) -> None:
    """The figure (the first pair) and the tables (every pair) into ``--workdir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    content, style, shape, curves, _, _ = compared[0]
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (used, loss) in curves.items():
        keep = used <= args.evaluations
        ax.plot(used[keep], loss[keep], label=LABELS[name])
    ax.set_yscale("log")
    ax.set_xlabel("loss/gradient evaluations")
    ax.set_ylabel("total loss")
    ax.set_title(f"{content.name} x {style.name}, {shape[1]}x{shape[0]} px")
    ax.legend()
    args.workdir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.workdir / "lbfgs_linesearch.png", dpi=120)
    blocks = [
        f"{c.name} x {s.name}, {shape[1]}x{shape[0]} px:\n\n{_table(args, *rest)}"
        for c, s, shape, *rest in compared
    ]
    machine = f"{platform.machine()}, {platform.processor() or 'cpu'}, jax {jax.__version__}"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = "\n\n".join(blocks)
    text += f"\n\nmachine: {machine}, backend {jax.default_backend()}, load {load}\n"
    (args.workdir / "lbfgs_linesearch.md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
