"""Strong-Wolfe L-BFGS against fixed-step L-BFGS for the same number of loss/gradient evaluations.

The default stylisation (``nstjax.api.Run()``'s weights and layers, content initialisation, max
pooling, 20 curvature pairs) of tubingen.jpg in the style of starry_night.jpg at 256 px, with the
real VGG-19: one run of ``lbfgs`` (step 1, one evaluation per step), one of ``lbfgs_wolfe``
(strong-Wolfe line search, first trial step ``f / |g|^2``, then 1) and one of
``lbfgs_wolfe_torch`` (the same line search with torch's first trial step ``1 / |g|_1``), each
its own compiled batch of one, run one after the other in this process. Writes
``lbfgs_linesearch.png`` (loss against evaluations) and ``lbfgs_linesearch.md`` (the loss at a
few evaluation counts, the cost per step and per evaluation against the fixed step) to
``--workdir``. ``--first-trials`` instead prints the loss and slope at candidate first trial steps
along ``-g`` from the starting point (how the first-step rule was chosen).

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

from nstjax import api, engine, image, targets
from nstjax.architecture import LAYER_INDEX, LAYER_NAMES


def layer_weights(layers) -> np.ndarray:
    """``[16]`` weights over the conv layers: equal over ``layers`` (names), or as mapped."""
    weights = dict(layers) if isinstance(layers, dict) else {n: 1 / len(layers) for n in layers}
    vector = np.zeros(len(LAYER_NAMES), np.float32)
    for name, weight in weights.items():
        vector[LAYER_INDEX[name]] = weight
    return vector


def batch(params, program, content, style, run: api.Run):
    """Initial pixels, hyperparameters and targets of one run (a batch of one)."""
    feats = targets.content_features(
        params,
        content[None],
        layers=program.content_layers,
        pooling=program.pooling,
        dtype="float32",
    )
    style = image.resize(style, image.long_side_shape(style.shape, max(content.shape[:2])))
    grams = targets.style_grams(
        params, style, layers=program.style_layers, pooling=program.pooling, dtype="float32"
    )
    hyper = engine.Hyper(
        content_weight=jnp.asarray([run.content_weight], jnp.float32),
        style_weight=jnp.asarray([run.style_weight], jnp.float32),
        tv_weight=jnp.asarray([run.tv_weight], jnp.float32),
        content_layer_weights=jnp.asarray(layer_weights(run.content_layers)[None]),
        style_layer_weights=jnp.asarray(layer_weights(run.style_layers)[None]),
        learning_rate=jnp.asarray([run.learning_rate], jnp.float32),
    )
    run_targets = engine.Targets(content=feats, style={name: g[None] for name, g in grams.items()})
    return jnp.asarray(content[None] * 255.0), hyper, run_targets


def optimise(params, program, args, steps, label):
    """The run's outcome and its seconds per step after the first chunk (compilation)."""
    stamps = []
    on_chunk = lambda done, state, metrics: stamps.append((done, time.perf_counter()))
    start = time.perf_counter()
    out = engine.optimize(params, program, *args, steps, chunk=10, on_chunk=on_chunk)
    (d0, t0), (d1, t1) = stamps[0], stamps[-1]
    print(f"{label}: {steps} steps in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    return out, (t1 - t0) / (d1 - d0)


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


def first_trials(params, content, style, run) -> None:
    """Prints the loss and slope along ``-g`` at the first trial step of each candidate rule."""
    program = engine.Program(
        content_layers=tuple(run.content_layers), style_layers=tuple(run.style_layers)
    )
    pixels, hyper, run_targets = batch(params, program, content, style, run)
    one = jax.tree.map(lambda x: x[0], (hyper, run_targets))
    value_and_grad = jax.jit(
        jax.value_and_grad(lambda p: engine.run_loss(params, program, p, *one)[0])
    )
    f, g = value_and_grad(pixels[0])
    f, g = float(f), np.asarray(g, np.float64)
    l1, largest, squared = np.abs(g).sum(), np.abs(g).max(), (g**2).sum()
    rules = {"torch 1/sum(abs(g))": 1 / l1, "f/(g.g)": f / squared, "2f/(g.g)": 2 * f / squared}
    rules.update({f"{k}/max(abs(g))": k / largest for k in (1, 3, 10, 30, 100)})
    rows = []
    for rule, t in sorted(rules.items(), key=lambda item: item[1]):
        f_t, g_t = value_and_grad(jnp.asarray(pixels[0] - t * g, jnp.float32))
        slope = float(np.asarray(g_t, np.float64).ravel() @ g.ravel()) / squared
        row = [rule, f"{t:.3g}", f"{t * largest:.3g}", f"{float(f_t) / f:.3f}", f"{slope:.3f}"]
        rows.append(row)
    header = ["rule", "t", "largest pixel change", "f(t) / f(0)", "g(t).g / g.g"]
    print(_figures.markdown_table(header, rows))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--evaluations", type=int, default=100, help="loss/gradient evaluations")
    p.add_argument("--content", type=Path, default=_figures.SHARED_IMAGES / "tubingen.jpg")
    p.add_argument("--style", type=Path, default=_figures.SHARED_IMAGES / "starry_night.jpg")
    p.add_argument("--weights", default=None, help="VGG-19 weights (default: $NSTJAX_WEIGHTS)")
    p.add_argument("--workdir", type=Path, default=Path("reproductions"))
    p.add_argument("--first-trials", action="store_true", help="probe first trial steps only")
    p.add_argument(
        "--optimizers", nargs="+", choices=OPTIMISERS, default=list(OPTIMISERS), help="lbfgs first"
    )
    args = p.parse_args(argv)
    params = _figures.load_params(args.weights)
    content, style = _figures.load(args.content, args.size), _figures.load(args.style, args.size)
    run = api.Run(learning_rate=1.0)  # the defaults; L-BFGS's natural step
    curves, seconds, outcomes = {}, {}, {}
    if args.first_trials:
        first_trials(params, content, style, run)
        return 0
    for name in dict.fromkeys(["lbfgs", *args.optimizers]):
        program = engine.Program(
            content_layers=tuple(run.content_layers),
            style_layers=tuple(run.style_layers),
            optimizer=name,
        )
        inputs = batch(params, program, content, style, run)
        # One evaluation per fixed step; the line search needs about 1.1 per step once its
        # memory has filled: the budget of steps leaves it at least the same evaluations.
        steps = args.evaluations if name == "lbfgs" else args.evaluations + 1
        out, seconds[name] = optimise(params, program, inputs, steps, name)
        outcomes[name] = out
        curves[name] = loss_at_evaluations(
            out.history[:, 0, 0], out.evaluations[:, 0], name != "lbfgs"
        )
    write(args, curves, seconds, outcomes, content.shape)
    return 0


def write(args, curves, seconds, outcomes, shape) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    labels = LABELS
    for name, (used, loss) in curves.items():
        keep = used <= args.evaluations
        ax.plot(used[keep], loss[keep], label=labels[name])
    ax.set_yscale("log")
    ax.set_xlabel("loss/gradient evaluations")
    ax.set_ylabel("total loss")
    ax.set_title(f"{args.content.name} x {args.style.name}, {shape[1]}x{shape[0]} px")
    ax.legend()
    args.workdir.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.workdir / "lbfgs_linesearch.png", dpi=120)
    budgets = [b for b in (10, 25, 50, 100, 200, 500) if b <= args.evaluations]
    rows = []
    for name in curves:
        evals = outcomes[name].evaluations[:, 0]
        per_step = float(np.mean(evals[1:]))
        rows.append(
            [labels[name]]
            + [f"{best_within(curves[name], b):.4g}" for b in budgets]
            + [f"{int(evals[0])}", f"{per_step:.2f} (max {int(evals[1:].max())})"]
            + [f"{seconds[name]:.2f}", f"{seconds[name] / seconds['lbfgs']:.2f}"]
            + [f"{seconds[name] / per_step / seconds['lbfgs']:.2f}"]
        )
    header = ["optimiser", *(f"loss @ {b} evals" for b in budgets)]
    header += ["evaluations at step 0", "evaluations per step (after step 0)", "s/step"]
    header += ["s/step vs fixed", "s/evaluation vs fixed"]
    table = _figures.markdown_table(header, rows)
    machine = f"{platform.machine()}, {platform.processor() or 'cpu'}, jax {jax.__version__}"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    text = f"{table}\n\nmachine: {machine}, backend {jax.default_backend()}, load {load}\n"
    (args.workdir / "lbfgs_linesearch.md").write_text(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
