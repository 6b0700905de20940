"""The time-to-quality figure: each measure against wall time, one line per recipe, one row of
panels per content/style pair (the reference's final values as dashed lines)."""

from collections.abc import Sequence
from pathlib import Path

from nstjax.atomic import atomic_path
from nstjax.bench.time_to_quality import CF_MARGIN, MEASURES, REFERENCE, SHORT


def plot(pairs: Sequence[dict], path: str | Path, title: str) -> None:
    """Writes the figure (PNG) to ``path``.

    Args:
        pairs: the benchmark's records (``{"label", "recipes": {name: [{"points": [...]}]}}``);
            each recipe's first round is drawn.
        path: the PNG file.
        title: the figure's title (size, machine, what kind of run).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(
        len(pairs), len(MEASURES), figsize=(4.2 * len(MEASURES), 3.2 * len(pairs)), squeeze=False
    )
    for row, pair in zip(axes, pairs):
        for ax, measure in zip(row, MEASURES):
            for name, rounds in pair["recipes"].items():
                points = rounds[0]["points"]
                ax.plot(
                    [p["seconds"] for p in points],
                    [p[measure] for p in points],
                    marker="o",
                    markersize=3,
                    label=name,
                    color="black" if name == REFERENCE else None,
                )
            if REFERENCE in pair["recipes"]:
                final = pair["recipes"][REFERENCE][0]["points"][-1][measure]
                level = final - CF_MARGIN if measure == "content_fidelity" else final
                ax.axhline(level, color="black", linestyle="--", linewidth=0.8)
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("wall time, s (log)")
            ax.set_title(f"{pair['label']}: {SHORT[measure]}", fontsize=9)
            ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
