"""``nstjax sweep``: run a config's grid of hyperparameters and image pairs into a resumable workdir.

    nstjax sweep --config configs/sweep_style_weight.py:quick --workdir /tmp/grid
    nstjax sweep --config configs/pairs.py --workdir out --config.data.size=256
    nstjax sweep --config configs/search_style.py:quick --workdir /tmp/search   # a search

Thin: it parses flags, loads the config (:mod:`nstjax.config`) and calls :mod:`nstjax.sweep`.
"""

import argparse
import sys

from nstjax.errors import NstjaxError


def register(subparsers) -> None:
    from nstjax.sweep import distributed

    p = subparsers.add_parser(
        "sweep",
        help="run a sweep config (grids of hyperparameters x image pairs) into a workdir",
        description=(
            "Expands a sweep config into runs, groups them by shape, and runs each group as "
            "compiled batches sharded over the local devices (and processes). Rerunning the "
            "same command resumes. Override config fields with --config.FIELD=VALUE."
        ),
    )
    p.add_argument("--config", required=True, help="config file, optionally FILE.py:ARG")
    p.add_argument("--workdir", required=True, help="the sweep's folder (created if missing)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace a different sweep found in --workdir"
    )
    p.add_argument(
        "--batch-size", type=int, default=None, help="runs per compiled batch (default: by memory)"
    )
    p.add_argument(
        "--memory-gb",
        type=float,
        default=None,
        help="memory per device to plan batches for (default: what the device reports)",
    )
    p.add_argument("--weights", default=None, help="VGG-19 weights; overrides model.weights")
    p.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    distributed.add_options(p, "sweep")
    p.add_argument(
        "--wait-timeout",
        type=float,
        default=24 * 3600.0,
        help="seconds process 0 waits for the other processes' runs (86400)",
    )
    p.set_defaults(func=main)


def load(spec: str, overrides: list[str]):
    """Loads a config and applies every override, collecting the bad ones."""
    from nstjax.config import apply_override, load_config

    config = load_config(spec)
    problems = []
    for item in overrides:
        try:
            apply_override(config, item)
        except NstjaxError as e:
            problems.append(str(e))
    return config, problems


def main(args: argparse.Namespace) -> int:
    from nstjax import sweep, validate
    from nstjax.sweep import distributed

    if args.batch_size is not None and args.batch_size < 1:
        raise NstjaxError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.memory_gb is not None:
        validate.number(args.memory_gb, "--memory-gb", positive=True)
    validate.number(args.wait_timeout, "--wait-timeout", minimum=0)
    cluster_spec = distributed.resolve(args.coordinator, args.num_processes, args.process_id)
    config, problems = load(args.config, args.config_overrides)
    prepared = sweep.prepare(config, problems)
    if prepared.search is not None:
        if cluster_spec is not None:
            raise NstjaxError(
                "--num-processes: a search is shared through its storage, not jax.distributed; "
                "run one process per workdir with the same --config.search.storage"
            )
        return search_main(args, prepared)
    if args.dry_run:
        for run in prepared.runs:
            shape = "x".join(map(str, prepared.output_shape(run)))
            print(f"{run.id}  {shape}  {run.label}")
        print(f"{len(prepared.runs)} runs")
        return 0

    cluster = distributed.initialize(cluster_spec, shutdown_timeout_s=int(args.wait_timeout) + 600)
    from nstjax import vgg

    params = vgg.load_params(args.weights or prepared.config.model.weights or None)
    settings = sweep.RunSettings(
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        memory_gb=args.memory_gb,
        wait_timeout_s=args.wait_timeout,
    )
    outcome = sweep.run_sweep(prepared, args.workdir, params, settings, cluster=cluster)
    who = f"process {cluster.process_id}: " if cluster.num_processes > 1 else ""
    print(f"{who}computed {len(outcome.computed)} run(s) into {args.workdir}")
    if cluster.is_leader:
        print(
            f"sweep: {outcome.done} done, {outcome.failed} failed (non-finite loss), "
            f"{outcome.pending} unfinished of {outcome.total}"
        )
    if outcome.failed or outcome.pending:
        print(
            "nstjax: sweep: some runs failed or are unfinished (see manifest.json)", file=sys.stderr
        )
        return 1
    return 0


def search_main(args: argparse.Namespace, prepared) -> int:
    """Runs (or with ``--dry-run`` describes) a config's ``search`` section."""
    from nstjax.sweep import search as search_module

    spec = prepared.search
    if args.dry_run:
        for r in spec.ranges:
            print(f"{r.name}  [{r.low:g}, {r.high:g}]  {r.scale}")
        print(
            f"{spec.trials} trials in generations of {spec.generation}, sampler {spec.sampler}, "
            f"pruned at steps {list(spec.prune_steps) or '-'}"
        )
        return 0
    from nstjax import vgg

    params = vgg.load_params(args.weights or prepared.config.model.weights or None)
    outcome = search_module.run_search(prepared, args.workdir, params, overwrite=args.overwrite)
    print(
        f"search: ran {len(outcome.computed)} trial(s) in {outcome.generations} generation(s); "
        f"the study holds {outcome.counted} of {spec.trials}"
    )
    if outcome.best:
        best = outcome.best
        print(
            f"search: best trial {best['trial']}: objective {best['objective']:.6g} {best['params']}"
        )
    return 0
