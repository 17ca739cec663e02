"""Figures logged beside the metrics."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from embedbench.embedding.views import ViewSet  # noqa: E402


def dim_curve(metrics: dict[str, float], views: ViewSet, main_metrics: dict[str, str], path: Path) -> Path | None:
    """Main score of each task against embedding dim (last layer); None when the model has one dim."""
    dims = sorted({v for v in views.views if v.layer == views.n_layers}, key=lambda v: v.dim)
    if len(dims) < 2:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.set_xscale("log", base=2)
    ax.set_xticks([v.dim for v in dims], [str(v.dim) for v in dims])
    return _score_lines(fig, ax, [v.dim for v in dims], dims, metrics, views, main_metrics,
                        "embedding dim (leading coordinates, re-normalised)", path)


def _score_lines(fig, ax, xs, along, metrics, views: ViewSet, main_metrics: dict[str, str], xlabel: str,
                 path: Path) -> Path:
    """One line per task's main score over the views ``along``, saved to ``path``."""
    for task, metric in main_metrics.items():
        ax.plot(xs, [metrics[f"{task}/{metric}{views.name(v)}"] for v in along], marker="o",
                label=f"{task}/{metric}")
    return _saved_lines(fig, ax, xlabel, path)


def _saved_lines(fig, ax, xlabel: str, path: Path) -> Path:
    """A line plot of scores, labelled, gridded and saved to ``path``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("score")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def length_curve(series: dict[str, dict[int, float]], path: Path) -> Path:
    """A length sweep's main score against input length in tokens, one line per kind of task."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.set_xscale("log", base=2)
    for name, points in series.items():
        ax.plot(list(points), list(points.values()), marker="o", label=name.rsplit("/by_length", 1)[0])
    lengths = sorted({tokens for points in series.values() for tokens in points})
    ax.set_xticks(lengths, [f"{n // 1024}k" if n >= 1024 else str(n) for n in lengths])
    ax.set_ylim(-0.02, 1.02)
    return _saved_lines(fig, ax, "document length (tokens)", path)


def grid_heatmap(metrics: dict[str, float], views: ViewSet, task: str, metric: str, path: Path) -> Path | None:
    """Layer x dim heatmap of one task's main score; None unless views span several layers and dims."""
    layers = sorted({v.layer for v in views.views})
    dims = sorted({v.dim for v in views.views})
    if len(layers) < 2 or len(dims) < 2:
        return None
    cells = {(v.layer, v.dim): metrics[f"{task}/{metric}{views.name(v)}"] for v in views.views}
    grid = [[cells.get((layer, dim), float("nan")) for dim in dims] for layer in layers]
    fig, ax = plt.subplots(figsize=(1.1 * len(dims) + 2, 0.6 * len(layers) + 1.5))
    image = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
    middle = sum(image.get_clim()) / 2
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if value == value:  # not NaN
                ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                        color="black" if value > middle else "white")  # readable on light and dark cells
    ax.set_xticks(range(len(dims)), [str(d) for d in dims])
    ax.set_yticks(range(len(layers)), [str(layer) for layer in layers])
    ax.set_xlabel("dim")
    ax.set_ylabel("layer")
    ax.set_title(f"{task}/{metric}")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def diagonal_curve(metrics: dict[str, float], views: ViewSet, main_metrics: dict[str, str], path: Path) -> Path | None:
    """Main scores along a model's declared (layer, dim) diagonal, small to large (Starbucks-style models)."""
    diagonal = sorted(view for view, _ in views.weights)
    if len(diagonal) < 2 or len({v.layer for v in diagonal}) != len(diagonal):
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"({v.layer},{v.dim})" for v in diagonal]
    return _score_lines(fig, ax, labels, diagonal, metrics, views, main_metrics, "(layer, dim)", path)


def index_pareto(metrics: dict[str, float], views: ViewSet, task: str, metric: str, index_names: list[str],
                 path: Path) -> Path | None:
    """Quality against queries/second for exact search and every index, each view a point; the
    Pareto front (no point both faster and better) joined by a line. None without indexes."""
    if not index_names:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = []
    for index in ["exact", *index_names]:
        xs, ys = [], []
        for view in views.views:
            suffix = views.name(view, "" if index == "exact" else index)
            if f"{task}/search_qps{suffix}" in metrics:
                xs.append(metrics[f"{task}/search_qps{suffix}"])
                ys.append(metrics[f"{task}/{metric}{suffix}"])
        ax.scatter(xs, ys, label=index, s=28)
        points += zip(xs, ys)
    front, best = [], float("-inf")
    for qps, score in sorted(points, key=lambda p: (-p[0], -p[1])):
        if score > best:
            front.append((qps, score))
            best = score
    ax.plot(*zip(*front), color="grey", linewidth=1, zorder=0, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("queries / second (search only)")
    ax.set_ylabel(f"{task}/{metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
