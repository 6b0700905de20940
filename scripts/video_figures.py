"""Flicker of the three video modes on a clip with known motion: the table and frame strip of
docs/video.md.

A window slides (1.5, 0.75) px and zooms 1 % per frame over the shipped photo
(:func:`nstjax.video.synthetic.synthetic_clip`), so the exact flow measures the flicker; each mode
gets the same per-frame step budget (sequential: half of it after the first frame; multipass
divides it over its passes) with the video command's optimiser, L-BFGS.

    python scripts/video_figures.py --frames 4 --size 64 --steps 200 --strip docs/video_strip.png
"""

import argparse
import json

import jax.numpy as jnp
import numpy as np
from PIL import Image

from nstjax import atomic, examples, image, quality, vgg
from nstjax.run import Options, Run
from nstjax.video import compare, modes, synthetic
from nstjax.video.warp import warp

STRIP_COLOURS = 96
"""The strip is a palette PNG of this many colours (a small file for the docs)."""


def _strip(figures, clip, path) -> None:
    """Rows: the clip, then each mode; then each mode's change from the warped previous frame
    (grey, x4), where flicker shows."""
    rows = [clip.frames] + [f.frames for f in figures]
    backward, _ = compare.true_consistency_inputs(clip)

    for f in figures:
        change = [np.zeros_like(f.frames[0])]
        for i in range(1, len(f.frames)):
            previous = warp(jnp.asarray(f.frames[i - 1]), jnp.asarray(backward[i - 1]))
            change.append(np.abs(f.frames[i] - np.asarray(previous)))
        grey = np.clip(np.stack(change).mean(axis=-1, keepdims=True) * 4, 0, 1)
        rows.append(np.repeat(grey, 3, axis=-1))
    strip = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)
    palette = Image.fromarray(image.to_uint8(strip)).quantize(
        STRIP_COLOURS, Image.Quantize.MEDIANCUT
    )
    with atomic.atomic_path(path) as tmp:
        palette.save(tmp, format="PNG", optimize=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--size", type=int, default=64, help="longer side of the frames")
    p.add_argument("--steps", type=int, default=200, help="per-frame step budget")
    p.add_argument("--passes", type=int, default=modes.DEFAULT_PASSES)
    p.add_argument("--optimizer", default=modes.DEFAULT_OPTIMIZER)
    p.add_argument("--weights", default=None)
    p.add_argument("--strip", default=None, help="write the frame strip here (PNG)")
    p.add_argument("--json", default=None, help="write the figures here")
    p.add_argument(
        "--workdir", default=None, help="keep flows and frames here (a rerun reuses them)"
    )
    args = p.parse_args()
    h, w = round(args.size * 3 / 4), args.size
    clip = synthetic.synthetic_clip(image.load_image(examples.CONTENT, 3 * w), args.frames, (h, w))
    styles = [image.load_image(examples.STYLE, w)]
    settings = {m: modes.VideoSettings(mode=m, passes=args.passes) for m in modes.MODES[::-1]}
    params = vgg.load_params(args.weights)
    figures = compare.compare_modes(
        params,
        clip,
        styles,
        Run(),
        Options(steps=args.steps, optimizer=args.optimizer),
        settings,
        args.workdir,
    )
    base = figures[0].temporal_error
    print("| mode | temporal error | vs independent | content fidelity | global effects |", end="")
    print(" content loss | style loss | wall time |")
    print("|---|---|---|---|---|---|---|---|")
    for f in figures:
        cf, ge = (f.quality[n] for n in compare.QUALITY)
        print(
            f"| {f.mode} | {f.temporal_error:.1f} | {base / f.temporal_error:.1f}x less | "
            f"{cf:.3f} | {ge:.3f} | {f.content:.4g} | {f.style:.4g} | {f.seconds:.0f} s |"
        )
    for f in figures:
        per_frame = quality.measure(
            params, f.frames, clip.frames, [styles[0]] * len(clip.frames), names=compare.QUALITY
        )
        print(f.mode, {k: np.round(np.asarray(v), 3).tolist() for k, v in per_frame.items()})
    if args.strip:
        _strip(figures, clip, args.strip)
    if args.json:
        rows = [{k: v for k, v in vars(f).items() if k != "frames"} for f in figures]
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "modes": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
