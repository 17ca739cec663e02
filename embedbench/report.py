"""What a finished run reports: suite averages, per-view curves and figures, ``results.json``, and the
end-of-run report (run folder, MLflow run and its URL, time per phase, a table of every view per task)."""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from embedbench.atomic import atomic_write
from embedbench.embedding.views import ViewSet
from embedbench.phases import Phases, format_seconds
from embedbench.plots import diagonal_curve, dim_curve, grid_heatmap, index_pareto, length_curve
from embedbench.retrieval.base import COSTS
from embedbench.tasks.base import Task
from embedbench.tasks.long_synthetic import LengthSweep

log = logging.getLogger("embedbench")
RUNS = "runs"  # the run folder's TREC run files (eval.save_runs)


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


def curves(metrics: dict[str, float], views: ViewSet | None, main: dict[str, str]) -> dict[str, dict[int, float]]:
    """Each main score along the model's dims (step = dim), layers (step = layer) and declared diagonal (step =
    position), as series MLflow draws as one line per run and overlays across the runs of a sweep."""
    if views is None:
        return {}
    along = {
        "by_dim": {v.dim: v for v in views.views if v.layer == views.n_layers},
        "by_layer": {v.layer: v for v in views.views if v.dim == views.hidden_size},
        "by_diagonal": {i: v for i, v in enumerate(sorted(view for view, _ in views.weights), 1)},
    }
    if len({v.layer for v in along["by_diagonal"].values()}) != len(along["by_diagonal"]):
        del along["by_diagonal"]  # declared views on one layer are a dim curve, not a diagonal
    return {f"{task}/{metric}/{name}": {step: metrics[f"{task}/{metric}{views.name(v)}"] for step, v in steps.items()}
            for task, metric in main.items() for name, steps in along.items() if len(steps) > 1}


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


def view_table(prefix: str, metrics: dict[str, float], baseline: dict[str, float] | None = None,
               main: str | None = None) -> list[str]:
    """Rows: the views (and index variants) of one task's results; columns: its quality metrics, and the
    change of ``main`` against ``baseline`` when given."""
    cells: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith(prefix + "/"):
            metric, _, view = key[len(prefix) + 1:].partition("/")
            if metric not in COSTS and not view.startswith("by_"):
                cells.setdefault(view or "full", {})[metric] = value
    columns = list(dict.fromkeys(m for row in cells.values() for m in row))
    delta = f"{main} vs start" if baseline and main else None
    width = max([4, *map(len, cells)])
    lines = ["  " + "view".ljust(width) + "".join(f"  {c:>{max(len(c), 7)}}" for c in columns)
             + (f"  {delta:>{len(delta)}}" if delta else "")]
    for view, row in cells.items():
        line = "  " + view.ljust(width) + "".join(
            f"  {row[c]:>{max(len(c), 7)}.5f}" if c in row else "  " + " " * max(len(c), 7) for c in columns)
        if delta:
            key = f"{prefix}/{main}" + ("" if view == "full" else f"/{view}")
            line += f"  {row[main] - baseline[key]:>+{len(delta)}.5f}" if key in baseline and main in row else ""
        lines.append(line)
    return lines


def render(job: str, out_dir: Path, tracker, phases: Phases, tasks: Sequence[Task], metrics: dict[str, float],
           main: dict[str, str], baseline: dict[str, float] | None = None) -> str:
    """The end-of-run report, as printed and logged."""
    lines = [f"embedbench {job}: finished in {format_seconds(phases.elapsed)}",
             f"  run folder  {out_dir}",
             f"  MLflow run  {tracker.run_id}  {tracker.url}",
             f"  phases      {phases.summary()}"]
    slices = {prefix: task.sliced for task in tasks for prefix in task.main_scores}
    for prefix, metric in main.items():
        sliced = slices.get(prefix)
        lines += ["", f"{prefix}" + (f"  (SLICE: {sliced})" if sliced else "")]
        lines += view_table(prefix, metrics, baseline, metric)
    return "\n".join(lines)


def write_results(path: Path, payload: dict) -> None:
    """``results.json``, written last and atomically: it exists only for a complete run."""
    with atomic_write(path) as fh:
        json.dump(payload, fh, indent=2, sort_keys=True)


def finish(job: str, tracker, out_dir: Path, phases: Phases, tasks: Sequence[Task], views: ViewSet | None,
           metrics: dict[str, float], config: dict, suite: str | None = None,
           baseline: dict[str, float] | None = None) -> str:
    """Log metrics, curves, figures and the report to the run; write ``results.json``; print the report.
    Returns the headline metric: the first task's main metric at the full view."""
    main = main_scores(tasks)
    if suite:
        metrics.update(suite_average(metrics, main, views, suite))
        if baseline:
            baseline.update(suite_average(baseline, main, views, suite))
        main[suite] = "average"
    tracker.log_metrics(metrics)
    if baseline:
        tracker.log_metrics({f"baseline/{key}": value for key, value in baseline.items()})
    sweeps = {task.name: task.by_length(metrics) for task in tasks if isinstance(task, LengthSweep)}
    for name, series in [*curves(metrics, views, main).items(), *(c for s in sweeps.values() for c in s.items())]:
        tracker.log_series(name, series)
    for figure in [*figures(metrics, views, main, tasks, out_dir),
                   *(length_curve(series, out_dir / f"by_length_{name}.png") for name, series in sweeps.items())]:
        tracker.log_artifact(figure, "plots")
    tracker.set_tags({"embedbench.tasks": ",".join(sorted(main)),
                      "embedbench.main": ",".join(f"{task}/{metric}" for task, metric in main.items()),
                      "embedbench.scope": "slice" if any(task.sliced for task in tasks) else "full"})
    payload = {"metrics": metrics, "mlflow_run_id": tracker.run_id, "config": config,
               **({"baseline": baseline} if baseline else {})}
    tracker.log_dict(payload, "results.json")
    write_results(out_dir / "results.json", payload)
    log.info("\n%s", render(job, out_dir, tracker, phases, tasks, metrics, main, baseline))
    if (out_dir / RUNS).is_dir():  # eval.save_runs: the retrieval rankings as TREC run files
        tracker.log_artifact(out_dir / RUNS)
    job_log = out_dir / f"{job}.log"  # Hydra's log of this job, the report included
    if job_log.is_file():
        tracker.log_artifact(job_log)
    task, metric = next(iter(main.items()))
    return f"{task}/{metric}"


def aligned(rows: Sequence[Sequence[str]], left: int = 0) -> str:
    """Rows of cells as text columns padded to their widest cell: the first ``left`` flush left, the rest right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i < left else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(row, widths))).rstrip() for row in rows)
