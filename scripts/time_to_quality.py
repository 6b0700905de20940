"""Time to quality: Wang et al.'s CF, GE and LP against wall time for nstjax's recipes and
neural-style's default recipe in PyTorch, on several content/style pairs, in one run.

    PYTHONPATH=.:TORCH_SITE NSTJAX_WEIGHTS=vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 \
        python scripts/time_to_quality.py --size 512 --output docs/benchmarks/time_to_quality \
        --pairs chelsea.jpg:starry_night.jpg astronaut.jpg:great_wave.jpg \
                composition_vii.jpg:shipwreck_of_the_minotaur.jpg

The recipes and the protocol are :mod:`nstjax.bench.time_to_quality`'s. Writes
``time_to_quality.json`` (every snapshot's measures and seconds, the machine, the settings),
``time_to_quality.png`` (measures against time) and ``time_to_quality.md`` (the table: the time
each recipe needs to reach the PyTorch reference's final GE and LP and at least its final CF less
0.02) into ``--output``, and prints the table. The PyTorch side needs ``torch`` importable (``pip install
nstjax[torch]``, or its site folder on ``PYTHONPATH``); ``--recipes`` without
``neural-style-torch`` runs without it (and without a reference to compare with).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from nstjax.bench import time_to_quality as ttq

RECORDED = ("size", "budget", "checkpoints", "recipes", "rounds", "min_scale", "threads", "pairs")
"""The flags the JSON records (not the weights' or output's paths)."""
PAIRS = ("chelsea.jpg:starry_night.jpg", "astronaut.jpg:great_wave.jpg")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--pairs",
        nargs="+",
        default=list(PAIRS),
        metavar="CONTENT:STYLE",
        help="image files, or names of nstjax's example images",
    )
    p.add_argument("--size", type=int, default=512, help="the output's longer side")
    p.add_argument(
        "--budget", type=float, default=1.0, help="multiplies every recipe's iteration counts"
    )
    p.add_argument("--checkpoints", type=int, default=10, help="snapshots per recipe (about)")
    p.add_argument("--recipes", nargs="+", default=list(ttq.RECIPES), choices=ttq.RECIPES)
    p.add_argument("--rounds", type=int, default=1, help="each recipe's runs per pair, alternated")
    p.add_argument("--min-scale", type=int, default=128, help="crowsonkb's first size")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch's threads")
    p.add_argument("--weights", default=None, help="the VGG-19 .h5 (default $NSTJAX_WEIGHTS)")
    p.add_argument("--label", default="", help="what kind of run this is, for the figure's title")
    p.add_argument("--output", type=Path, default=Path("time_to_quality"))
    p.add_argument(
        "--known",
        type=Path,
        default=None,
        help="an earlier run's time_to_quality.json (same --size, --budget, --checkpoints, "
        "--rounds, --threads): its records of these recipes on these pairs are kept, not run again",
    )
    return p


def _image_path(name: str) -> str:
    from nstjax import examples

    return name if os.path.isfile(name) else str(examples.path(name))


def _check_inputs(pairs, h5, size: int) -> str | None:
    """The first problem with the inputs (before anything is loaded or compiled), or None."""
    from nstjax.errors import NstjaxError
    from nstjax.image import image_shape
    from nstjax.quality.protocol import MIN_SIDE
    from nstjax.resample import long_side_shape

    if not h5 or not Path(h5).is_file():
        return "--weights or $NSTJAX_WEIGHTS must name the VGG-19 .h5"
    for pair in pairs:
        content, sep, style = pair.partition(":")
        if not sep or not content or not style:
            return f"--pairs {pair!r}: expected CONTENT:STYLE"
        try:
            shapes = [image_shape(_image_path(name)) for name in (content, style)]
        except NstjaxError as e:
            return f"--pairs {pair!r}: {e}"
        small = min(min(long_side_shape(shape, size)) for shape in shapes)
        if small < MIN_SIDE:
            return f"--pairs {pair!r}: at --size {size} a side is {small} px; the measures need {MIN_SIDE}"
    return None


def _machine() -> dict:
    import platform
    from importlib import metadata

    import jax

    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )  # fmt: skip
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    return {
        "cpu": model, "cores": os.cpu_count(), "load_average": os.getloadavg(),
        "jax": jax.__version__, "backend": jax.default_backend(), "torch": torch_version,
    }  # fmt: skip


def _known(path: Path | None, args) -> tuple[dict, str | None]:
    """``{"content:style": {recipe: [records]}}`` of an earlier run (each record marked with the
    file it came from), or a problem with it."""
    if path is None:
        return {}, None
    try:
        earlier = json.loads(path.read_text())
        settings, pairs = earlier["settings"], earlier["pairs"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return {}, f"--known {path}: not a time_to_quality.json ({e})"
    for key in ("size", "budget", "checkpoints", "rounds", "threads"):
        if settings.get(key) != getattr(args, key):
            return (
                {},
                f"--known {path}: made with --{key} {settings.get(key)}, not {getattr(args, key)}",
            )
    known = {}
    for pair in pairs:
        recipes = {n: [r | {"from": str(path)} for r in rs] for n, rs in pair["recipes"].items()}
        known[f"{pair['content']}:{pair['style']}"] = recipes
    return known, None


def _pair(params, h5: str, pair: str, settings, known: dict) -> dict:
    from nstjax.image import load_image

    content_name, _, style_name = pair.partition(":")
    content = load_image(_image_path(content_name), settings.size, "content image")
    style = load_image(_image_path(style_name), settings.size, "style image")
    label = f"{Path(content_name).stem}+{Path(style_name).stem}"
    record = ttq.run_pair(params, h5, content, style, label, settings, known.get(pair))
    return {"content": content_name, "style": style_name, **record}


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    import jax

    from nstjax import vgg
    from nstjax.atomic import write_text
    from nstjax.bench.ttq_plot import plot

    h5 = args.weights or os.environ.get("NSTJAX_WEIGHTS")
    known, problem = _known(args.known, args)
    problem = problem or _check_inputs(args.pairs, h5, args.size)
    if problem:
        print(f"time_to_quality: {problem}", file=sys.stderr)
        return 2
    jax.config.update("jax_enable_compilation_cache", False)  # cold compiles, whatever the env
    params = vgg.load_params(h5)
    started = time.time()
    report = {
        "machine_at_start": _machine(),
        "settings": {k: getattr(args, k) for k in RECORDED},
    }
    settings = ttq.Settings(
        args.size, args.budget, args.checkpoints, tuple(args.recipes), args.rounds,
        args.min_scale, args.threads,
    )  # fmt: skip
    args.output.mkdir(parents=True, exist_ok=True)
    pairs = []
    for pair in args.pairs:  # each pair's record kept as it finishes: a long run stopped keeps them
        pairs.append(_pair(params, h5, pair, settings, known))
        partial = json.dumps(report | {"pairs": pairs}, indent=1) + "\n"
        write_text(args.output / "time_to_quality.partial.json", partial)
    report |= {"pairs": pairs, "machine_at_end": _machine(), "wall_s": time.time() - started}
    report["summary"] = ttq.summary_rows(pairs)
    table = ttq.markdown_table(report["summary"])
    write_text(args.output / "time_to_quality.json", json.dumps(report, indent=1) + "\n")
    write_text(args.output / "time_to_quality.md", table + "\n")
    m = report["machine_at_start"]
    title = f"{args.label} {args.size} px, budget {args.budget:g}; {m['cpu']}, {m['cores']} cores"
    plot(pairs, args.output / "time_to_quality.png", title.strip())
    print(table)
    return 0


if __name__ == "__main__":
    from nstjax.errors import run_script

    sys.exit(run_script(main))
