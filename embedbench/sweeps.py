"""Sweeps in MLflow: a parent run opened before the jobs start, which each job's run points at, and closed
with the sweep's summary: the settings it varied, the best job by the sweep's objective, and its table."""
from __future__ import annotations

import json
from pathlib import Path

from hydra.experimental.callback import Callback
from mlflow.entities import Param
from mlflow.tracking import MlflowClient

from embedbench.config import LoggerConfig
from embedbench.tracking import JOB_TAG, PARENT_FILE, ROLE_TAG, SWEEP_TAG, experiment_id, parent_run, tracking_uri

VARYING_FILE = ".sweep_varying.json"


def varying_keys(sweep_dir: str | None) -> list[str]:
    """The settings a sweep varies (``loss.temperature`` for ``loss.temperature=0.02,0.05``)."""
    path = Path(sweep_dir) / VARYING_FILE if sweep_dir else None
    return json.loads(path.read_text()) if path and path.is_file() else []


class SweepCallback(Callback):
    """Hydra's hook around a multirun: the parent run before the jobs, its summary after them."""

    def on_multirun_start(self, config, **kwargs) -> None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        client = MlflowClient(tracking_uri(config.logger))
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        overrides = list(config.hydra.overrides.task)
        varying = [o.get_key_element() for o in OverridesParser.create().parse_overrides(overrides)
                   if o.is_sweep_override()]
        (sweep_dir / VARYING_FILE).write_text(json.dumps(varying))
        run = client.create_run(experiment_id(client, config.logger),
                                run_name=f"sweep {' '.join(varying)}: {' '.join(overrides)}"[:250],
                                tags={SWEEP_TAG: str(sweep_dir), ROLE_TAG: "sweep", JOB_TAG: str(config.job)})
        client.log_batch(run.info.run_id, params=[Param("sweep.overrides", " ".join(overrides)[:500]),
                                                  Param("sweep.varying", " ".join(varying)[:500])])
        (sweep_dir / PARENT_FILE).write_text(run.info.run_id)

    def on_multirun_end(self, config, **kwargs) -> None:
        run_id = parent_run(str(Path(config.hydra.sweep.dir).resolve()))
        if run_id is None:
            return
        client = MlflowClient(tracking_uri(config.logger))
        summarise_sweep(client, run_id, config.logger, config.sweep.objective)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "FINISHED")


def summarise_sweep(client: MlflowClient, parent: str, logger: LoggerConfig, objective: str | None) -> None:
    """The best finished job by ``objective`` (default: the first main metric of the jobs) as the parent's
    tags and metric, and the table of its jobs as its ``summary.md``."""
    from embedbench.compare import compare, load_runs

    uri = tracking_uri(logger)
    runs = load_runs(uri, logger.experiment, parent=parent)
    if runs.empty:
        return
    objective = objective or next(iter(runs["tags.embedbench.main"].dropna()), ",").split(",")[0]
    column = f"metrics.{objective}"
    if column in runs and runs[column].notna().any():
        best = runs.loc[runs[column].idxmax()]
        client.set_tag(parent, "embedbench.best_run", best["run_id"])
        client.set_tag(parent, "embedbench.best_run_name", str(best.get("tags.mlflow.runName", ""))[:500])
        client.log_metric(parent, f"best/{objective}", float(best[column]))
    client.log_text(parent, compare(uri, logger.experiment, fmt="markdown", parent=parent), "summary.md")
