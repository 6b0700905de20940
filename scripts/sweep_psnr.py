"""PSNR and SSIM of every finished run of a sweep against its content image: a markdown table.

For content reconstructions (``configs/paper_content_reconstructions.py``): each run's
``image.png`` against its content photo loaded at the image's size (as the sweep loaded it),
also after both are downsampled 8x (the layout alone). The initial image is not saved by a
sweep, so the table has no "noise" row.

    nstjax sweep --config configs/paper_content_reconstructions.py --workdir runs/content_rec
    python scripts/sweep_psnr.py runs/content_rec
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _figures
import numpy as np

from nstjax import image, metrics, resample


def _downsampled(x: np.ndarray, factor: int) -> np.ndarray:
    shape = (max(1, x.shape[0] // factor), max(1, x.shape[1] // factor))
    return resample.resize(x, shape)


def rows(workdir: Path) -> list[list[str]]:
    """One row per finished run, in run order: label, PSNR, SSIM, PSNR at 1/8 size."""
    out = []
    for record_path in sorted(workdir.glob("runs/*/run.json")):
        record = json.loads(record_path.read_text())
        if record.get("status") != "done":
            continue
        made = image.load_image(record_path.parent / "image.png", None, "sweep image")
        content = image.load_image(Path(record["content"]), max(made.shape[:2]), "content")
        if content.shape != made.shape:
            content = resample.resize(content, made.shape[:2])
        psnr, ssim = metrics.psnr(made, content), metrics.ssim(made, content)
        coarse = metrics.psnr(_downsampled(made, 8), _downsampled(content, 8))
        out.append([record["label"], f"{psnr:.2f}", f"{ssim:.3f}", f"{coarse:.2f}"])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workdir", type=Path, help="a sweep's --workdir")
    args = p.parse_args(argv)
    found = rows(args.workdir)
    if not found:
        print(f"{args.workdir}: no finished runs", file=sys.stderr)
        return 1
    header = ["run", "PSNR (dB)", "SSIM", "PSNR at 1/8 size (dB)"]
    print(_figures.markdown_table(header, found))
    return 0


if __name__ == "__main__":
    from nstjax.errors import run_script

    sys.exit(run_script(main))
