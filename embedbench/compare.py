"""`embedbench compare`: one table of an experiment's runs, the config values that differ, best first."""
from __future__ import annotations

import mlflow
import pandas as pd

from embedbench.errors import EmbedbenchError
from embedbench.tracking import ROLE_TAG

TIMING_SUFFIXES = ("eval_s", "index_build_s", "search_qps")


def headline_metrics(columns) -> list[str]:
    """``task/metric`` of the full view (no view suffix), training curves and timings left out."""
    names = [c[len("metrics."):] for c in columns if c.startswith("metrics.")]
    return [n for n in names if n.count("/") == 1 and not n.startswith("train/") and not n.endswith(TIMING_SUFFIXES)]


def runs_table(uri: str, experiment: str, max_runs: int = 100) -> pd.DataFrame:
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        raise EmbedbenchError(f"experiment {experiment!r}: not in the store {uri}")
    runs = mlflow.search_runs(experiment_names=[experiment], max_results=max_runs, order_by=["start_time DESC"])
    if runs.empty:
        return runs
    if f"tags.{ROLE_TAG}" in runs:
        runs = runs[runs[f"tags.{ROLE_TAG}"] != "sweep"]
    params = [c for c in runs.columns if c.startswith("params.")]
    varying = [c for c in params if runs[c].astype(str).nunique() > 1]
    metrics = headline_metrics(runs.columns)
    primary = next((m for m in metrics if m.endswith("/ndcg_at_10")), metrics[0] if metrics else None)
    if primary:
        metrics = [primary] + [m for m in metrics if m != primary]
    table = pd.DataFrame({
        "run": runs["run_id"].str[:8],
        "name": runs.get("tags.mlflow.runName", ""),
        "status": runs["status"],
        **{c[len("params."):]: runs[c] for c in varying},
        **{m: runs[f"metrics.{m}"].round(4) for m in metrics},
    })
    if primary:
        table = table.sort_values(primary, ascending=False, na_position="last")
    return table.reset_index(drop=True)
