"""Which way of putting K networks in one training step is bit-identical to each alone, and
its speed: ``jax.vmap`` over the networks (grouped convolutions) against ``jax.lax.map``
(one network's program, K times in a loop), a hybrid (the networks under ``lax.map``, the
VGG losses of all networks' outputs as one batch) and an unrolled loop (K copies of one
network's program, traced one after another).

    PYTHONPATH=. python scripts/probe_network_axis.py [--size 32] [--steps 4] [--width 4]

Prints, per mode, the max |difference| of network k of K trained together from the same
setting trained alone (same mode, K=1), and seconds per step for K=1 and K=4 (ratios in the
same run), and saves the table as JSON (``--out``).
"""

import argparse
import dataclasses
import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nstjax import vgg
from nstjax.feedforward import NetworkConfig, TrainConfig, step, training


def hybrid_step(state, vgg_params, objective, images, targets, hyper, number):
    """The networks' forward and backward under lax.map, VGG on all their outputs at once."""
    content = vgg.features(vgg_params, images, objective.content_layers, objective.pooling)
    k, b = hyper.content_weight.shape[0], images.shape[0]

    def losses(params):
        outputs = jax.lax.map(lambda p: objective.net.apply({"params": p}, images), params)
        flat = outputs.reshape(k * b, *outputs.shape[2:])
        feats = vgg.features(vgg_params, flat, objective.layers, objective.pooling)
        feats = jax.tree.map(lambda f: f.reshape(k, b, *f.shape[1:]), feats)

        def one(feats, outputs, targets, hyper):
            terms = functools.partial(step.image_terms, objective=objective, step=number)
            per = jax.vmap(terms, in_axes=(0, 0, None, 0, None))(
                feats, content, targets, outputs, hyper
            )
            c, s, tv = jnp.mean(per, axis=0)
            total = hyper.content_weight * c + hyper.style_weight * s + hyper.tv_weight * tv
            return total, jnp.stack([total, c, s, tv])

        totals, metrics = jax.vmap(one)(feats, outputs, targets, hyper)
        return jnp.sum(totals), metrics

    (_, metrics), grads = jax.value_and_grad(losses, has_aux=True)(state.params)

    def update(g, o, p):
        u, o = step.optimizer(0.0).update(g, o, p)
        return optax.apply_updates(p, u), o

    params, opt_state = jax.vmap(update)(grads, state.opt_state, state.params)
    return state._replace(params=params, opt_state=opt_state), metrics, None


MODES = ("vmap", "map", "unroll", "hybrid")
"""The package's three ``network_axis`` settings, and the hybrid of :func:`hybrid_step`."""


def run(mode, config, vgg_params, styles, batches):
    objective = training.objective_of(config)
    if mode != "hybrid":
        objective = dataclasses.replace(objective, network_axis=mode)
    hyper = training.hyper_of(config, objective)
    targets = training.style_targets(vgg_params, objective, styles)
    lr = jnp.asarray(config.per_network("learning_rate"), jnp.float32)
    state = training._init_state(objective, jax.random.key(0, impl="rbg"), lr)
    fn = hybrid_step if mode == "hybrid" else step.train_step
    fn = jax.jit(fn, static_argnums=2, donate_argnums=0)
    times = []
    for i, batch in enumerate(batches):
        t = time.perf_counter()
        state, metrics, _ = fn(state, vgg_params, objective, batch, targets, hyper, jnp.int32(i))
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    return jax.device_get(state), float(np.median(times[1:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--blocks", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--networks", type=int, default=4)
    ap.add_argument("--real", action="store_true", help="the real VGG-19 weights")
    ap.add_argument("--modes", default=",".join(MODES), help="comma-separated")
    ap.add_argument("--speed-only", action="store_true", help="no runs alone (no identity check)")
    ap.add_argument("--out", default="probe_network_axis.json")
    args = ap.parse_args()
    vgg_params = vgg.load_params() if args.real else vgg.init_params(jax.random.key(0))
    vgg_params = {k: v for k, v in vgg_params.items() if k != "prepared"}
    rng = np.random.default_rng(0)
    batches = [
        jnp.asarray(rng.random((args.batch_size, args.size, args.size, 3), np.float32))
        for _ in range(args.steps)
    ]
    k = args.networks
    styles = [rng.random((args.size, args.size, 3), np.float32) for _ in range(k)]
    weights = tuple(float(w) for w in np.geomspace(0.003, 0.03, k))
    net = NetworkConfig(width=args.width, residual_blocks=args.blocks)
    config = TrainConfig(
        styles=tuple(f"s{i}" for i in range(k)),
        content_dir="-",
        size=args.size,
        batch_size=args.batch_size,
        style_weight=weights,
        tv_weight=(0.1,),
        learning_rate=(5e-3,),
        network=net,
    )
    table = {}
    modes = args.modes.split(",")
    for mode in modes:
        together, t_k = run(mode, config, vgg_params, styles, batches)
        worst, t_1 = None if args.speed_only else 0.0, None
        for i in range(0 if args.speed_only else k):
            alone_config = TrainConfig(
                styles=("s",),
                content_dir="-",
                size=args.size,
                batch_size=args.batch_size,
                style_weight=(weights[i],),
                tv_weight=(0.1,),
                learning_rate=(5e-3,),
                network=net,
            )
            alone, t = run(mode, alone_config, vgg_params, [styles[i]], batches)
            t_1 = t if t_1 is None else t_1
            for a, b in zip(jax.tree.leaves(together.params), jax.tree.leaves(alone.params)):
                worst = max(worst, float(np.max(np.abs(a[i] - b[0]))))
        table[mode] = {"max_abs_diff": worst, "s_per_step_K1": t_1, f"s_per_step_K{k}": t_k}
        print(mode, table[mode], flush=True)
    base = table[modes[0]][f"s_per_step_K{k}"]
    for mode in modes:
        print(
            f"{mode}: K={k} step time / {modes[0]}'s = {table[mode][f's_per_step_K{k}'] / base:.2f}"
        )
    json.dump({"args": vars(args), "table": table}, open(args.out, "w"), indent=2)


if __name__ == "__main__":
    main()
