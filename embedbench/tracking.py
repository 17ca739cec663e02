"""MLflow lifecycle: one run per Hydra job, sweeps grouped under a parent run, FAILED on error."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import mlflow
from hydra.experimental.callback import Callback
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

PARENT_FILE = ".mlflow_parent_run_id"
RUN_FILE = ".mlflow_run_id"
SWEEP_TAG = "embedbench.sweep"
ROLE_TAG = "embedbench.role"


def tracking_uri(logger_cfg) -> str:
    """The configured URI, with a relative sqlite path made absolute (and its folder created)."""
    uri = str(logger_cfg.tracking_uri)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = Path(uri[len("sqlite:///"):]).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{path}"
    return uri


def experiment_id(client: MlflowClient, logger_cfg) -> str:
    found = client.get_experiment_by_name(logger_cfg.experiment)
    if found is not None:
        return found.experiment_id
    location = logger_cfg.get("artifact_location")
    location = Path(location).resolve().as_uri() if location else None
    try:
        return client.create_experiment(logger_cfg.experiment, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel job
        return client.get_experiment_by_name(logger_cfg.experiment).experiment_id


def flatten(tree, prefix: str = "") -> dict[str, str]:
    items = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.update(flatten(value, f"{name}."))
        else:
            items[name] = "null" if value is None else str(value)
    return items


class Tracker:
    """``with Tracker(cfg, run_name) as t:`` starts a run, logs the config; FAILED if the body raises."""

    def __init__(self, cfg, run_name: str, sweep_dir: str | None = None, run_file: Path | None = None,
                 resume_run_id: str | None = None):
        self.cfg = cfg
        self.run_name = run_name
        self.sweep_dir = sweep_dir
        self.client = MlflowClient(tracking_uri(cfg.logger))
        self.run_file = run_file  # where the run id is kept, so a resumed job continues this run
        self.run_id: str | None = resume_run_id

    def __enter__(self) -> Tracker:
        if self.run_id:  # resuming: the run, its params and config are already there
            self.client.update_run(self.run_id, status="RUNNING")
            return self
        exp = experiment_id(self.client, self.cfg.logger)
        tags = {"embedbench.task": str(self.cfg.task)}
        if self.sweep_dir:
            tags[SWEEP_TAG] = self.sweep_dir
            parent = Path(self.sweep_dir) / PARENT_FILE
            if parent.is_file():
                tags["mlflow.parentRunId"] = parent.read_text().strip()
        run = self.client.create_run(exp, run_name=self.run_name, tags=tags)
        self.run_id = run.info.run_id
        if self.run_file:
            self.run_file.parent.mkdir(parents=True, exist_ok=True)
            self.run_file.write_text(self.run_id)
        container = OmegaConf.to_container(self.cfg, resolve=True)
        limit = int(self.cfg.logger.param_max_len)
        params = [mlflow.entities.Param(k, v[:limit]) for k, v in flatten(container).items()]
        for start in range(0, len(params), 100):  # the store takes at most 100 params a batch
            self.client.log_batch(self.run_id, params=params[start:start + 100])
        self.client.log_text(self.run_id, OmegaConf.to_yaml(self.cfg, resolve=True), "config.yaml")
        return self

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        entries = [mlflow.entities.Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        for start in range(0, len(entries), 1000):
            self.client.log_batch(self.run_id, metrics=entries[start:start + 1000])

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), folder or path.name)
        else:
            self.client.log_artifact(self.run_id, str(path), folder)

    def __exit__(self, exc_type, exc, tb) -> None:
        status = "FINISHED" if exc_type is None else "FAILED"
        self.client.set_terminated(self.run_id, status)
        if status == "FAILED" and self.sweep_dir:
            parent = Path(self.sweep_dir) / PARENT_FILE
            if parent.is_file():
                self.client.set_terminated(parent.read_text().strip(), "FAILED")


class NullTracker:
    """What ranks other than 0 of a DDP run hold: they train, rank 0 alone writes to MLflow."""

    run_id = None

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass


class SweepCallback(Callback):
    """Opens a parent MLflow run for a Hydra multirun; each job's run points at it."""

    def on_multirun_start(self, config, **kwargs) -> None:
        client = MlflowClient(tracking_uri(config.logger))
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        overrides = " ".join(config.hydra.overrides.task)
        run = client.create_run(experiment_id(client, config.logger),
                                run_name=f"sweep {sweep_dir.name}: {overrides}"[:250],
                                tags={SWEEP_TAG: str(sweep_dir), ROLE_TAG: "sweep",
                                      "embedbench.task": str(config.task)})
        client.log_param(run.info.run_id, "sweep.overrides", overrides[:500])
        (sweep_dir / PARENT_FILE).write_text(run.info.run_id)

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        parent = sweep_dir / PARENT_FILE
        if not parent.is_file():
            return
        client = MlflowClient(tracking_uri(config.logger))
        run_id = parent.read_text().strip()
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "FINISHED")


def write_json_atomic(path: Path, payload: dict) -> None:
    """Readers see the old file or the whole new one, never a torn write."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)
