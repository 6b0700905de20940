"""The loss-curve figure of a training run (matplotlib, written atomically)."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nstjax.atomic import atomic_path
from nstjax.feedforward.step import METRICS


def loss_curve(path: Path, history: np.ndarray, names: Sequence[str]) -> None:
    """Plots each loss term against the step, one line per network, log scale.

    Args:
        path: the PNG to write.
        history: ``[steps, K, 4]`` (:data:`~nstjax.feedforward.step.METRICS`), NaN where not run.
        names: the K networks' names.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, history.shape[0] + 1)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.2), squeeze=False)
    for ax, column, title in zip(axes[0], range(len(METRICS)), METRICS):
        for k, name in enumerate(names):
            values = history[:, k, column]
            seen = np.isfinite(values) & (values > 0)
            ax.plot(steps[seen], values[seen], label=name, linewidth=0.8)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[0][0].legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
