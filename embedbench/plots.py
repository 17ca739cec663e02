"""Figures logged beside the metrics."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from embedbench.views import ViewSet  # noqa: E402


def dim_curve(metrics: dict[str, float], views: ViewSet, main_metrics: dict[str, str], path: Path) -> Path | None:
    """Main score of each task against embedding dim (last layer); None when the model has one dim."""
    dims = sorted({v for v in views.views if v.layer == views.n_layers}, key=lambda v: v.dim)
    if len(dims) < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for task, metric in main_metrics.items():
        values = [metrics[f"{task}/{metric}{views.name(v)}"] for v in dims]
        ax.plot([v.dim for v in dims], values, marker="o", label=f"{task}/{metric}")
    ax.set_xscale("log", base=2)
    ax.set_xticks([v.dim for v in dims], [str(v.dim) for v in dims])
    ax.set_xlabel("embedding dim (leading coordinates, re-normalised)")
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
