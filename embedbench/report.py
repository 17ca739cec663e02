"""What a finished run reports: suite averages, figures, ``results.json`` and the printed summary."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from embedbench.atomic import atomic_write
from embedbench.embedding.views import ViewSet
from embedbench.plots import diagonal_curve, dim_curve, grid_heatmap, index_pareto
from embedbench.tasks.base import Task


def main_scores(tasks: Sequence[Task]) -> dict[str, str]:
    """Metric prefix -> main metric over every task (an mteb task list reports one per mteb task)."""
    main = {}
    for task in tasks:
        main.update(task.main_scores)
    return main


def view_suffixes(views: ViewSet | None) -> list[str]:
    return [views.name(v) for v in views.views] if views else [""]


def suite_average(metrics: dict[str, float], main: dict[str, str], views: ViewSet | None,
                  suite: str) -> dict[str, float]:
    """``<suite>/average`` per view: the unweighted mean of each task's main score, as MTEB averages."""
    return {f"{suite}/average{suffix}":
            sum(metrics[f"{task}/{metric}{suffix}"] for task, metric in main.items()) / len(main)
            for suffix in view_suffixes(views)}


def figures(metrics: dict[str, float], views: ViewSet | None, main: dict[str, str], tasks: Sequence[Task],
            out_dir: Path) -> list[Path]:
    """The plots that fit the views: score against dim, along a declared diagonal, a layer x dim heatmap per
    task, and quality against speed per retrieval task with indexes."""
    if views is None:
        return []
    made = [dim_curve(metrics, views, main, out_dir / "metric_vs_dim.png"),
            diagonal_curve(metrics, views, main, out_dir / "metric_along_diagonal.png"),
            *(grid_heatmap(metrics, views, task, metric, out_dir / f"grid_{task}.png")
              for task, metric in main.items()),
            *(index_pareto(metrics, views, task.name, main[task.name], [s.name for s in task.indexes],
                           out_dir / f"index_pareto_{task.name}.png") for task in tasks if task.indexes)]
    return [figure for figure in made if figure]


def summary(main: dict[str, str], metrics: dict[str, float]) -> str:
    """Each task's main score for every view and index variant, one line per task."""
    lines = []
    for task, metric in main.items():
        head = f"{task}/{metric}"
        cells = [f"{key[len(head):].lstrip('/') or 'full'}={value:.5f}" for key, value in metrics.items()
                 if key == head or key.startswith(head + "/")]
        lines.append(f"{head}: " + "  ".join(cells))
    return "\n".join(lines)


def write_results(path: Path, payload: dict) -> None:
    """``results.json``, written last and atomically: it exists only for a complete run."""
    with atomic_write(path) as fh:
        json.dump(payload, fh, indent=2, sort_keys=True)


def finish(tracker, out_dir: Path, tasks: Sequence[Task], views: ViewSet | None, metrics: dict[str, float],
           config: dict, suite: str | None = None) -> None:
    """Log metrics and figures to the run, then write ``results.json`` and print the summary."""
    main = main_scores(tasks)
    if suite:
        metrics.update(suite_average(metrics, main, views, suite))
        main[suite] = "average"
    tracker.log_metrics(metrics)
    for figure in figures(metrics, views, main, tasks, out_dir):
        tracker.log_artifact(figure, "plots")
    payload = {"metrics": metrics, "mlflow_run_id": tracker.run_id, "config": config}
    tracker.log_dict(payload, "results.json")
    write_results(out_dir / "results.json", payload)
    print(summary(main, metrics))
