"""MLflow lifecycle: one run per Hydra job, sweeps grouped under a parent run, FAILED on error."""
from __future__ import annotations

from pathlib import Path

import mlflow
from hydra.experimental.callback import Callback
from mlflow.tracking import MlflowClient

from embedbench.config import LoggerConfig

PARENT_FILE = ".mlflow_parent_run_id"
RUN_FILE = ".mlflow_run_id"
SWEEP_TAG = "embedbench.sweep"
ROLE_TAG = "embedbench.role"
JOB_TAG = "embedbench.job"


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
    location = logger_cfg.artifact_location
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
    """``with Tracker(...) as t:`` starts a run (under the sweep's parent run, if any) and logs the config;
    the run ends FAILED if the body raises. ``run_file`` keeps the run id, so a resumed job continues it."""

    def __init__(self, logger: LoggerConfig, config: dict, run_name: str, sweep_dir: str | None = None,
                 run_file: Path | None = None, resume_run_id: str | None = None):
        self.logger, self.config, self.run_name = logger, config, run_name
        self.sweep_dir, self.run_file = sweep_dir, run_file
        self.run_id: str | None = resume_run_id

    def __enter__(self) -> Tracker:
        mlflow.set_tracking_uri(tracking_uri(self.logger))
        if self.run_id:  # resuming: the run, its params and config are already there
            mlflow.start_run(run_id=self.run_id)
            return self
        parent = _parent_run(self.sweep_dir)
        tags = {JOB_TAG: str(self.config.get("job")), **({SWEEP_TAG: self.sweep_dir} if self.sweep_dir else {})}
        run = mlflow.start_run(experiment_id=experiment_id(MlflowClient(), self.logger), run_name=self.run_name,
                               parent_run_id=parent, tags=tags)
        self.run_id = run.info.run_id
        if self.run_file:
            self.run_file.parent.mkdir(parents=True, exist_ok=True)
            self.run_file.write_text(self.run_id)
        limit = self.logger.param_max_len
        mlflow.log_params({key: value[:limit] for key, value in flatten(self.config).items()})
        mlflow.log_dict(self.config, "config.yaml")
        return self

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        mlflow.log_metrics({key: float(value) for key, value in metrics.items()}, step=step)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            mlflow.log_artifacts(str(path), folder or path.name)
        else:
            mlflow.log_artifact(str(path), folder)

    def log_dict(self, payload: dict, name: str) -> None:
        mlflow.log_dict(payload, name)

    def __exit__(self, exc_type, exc, tb) -> None:
        status = "FINISHED" if exc_type is None else "FAILED"
        mlflow.end_run(status)
        parent = _parent_run(self.sweep_dir)
        if status == "FAILED" and parent:
            MlflowClient().set_terminated(parent, "FAILED")


def _parent_run(sweep_dir: str | None) -> str | None:
    """The sweep's parent run, opened by :class:`SweepCallback` before the jobs start."""
    parent = Path(sweep_dir) / PARENT_FILE if sweep_dir else None
    return parent.read_text().strip() if parent and parent.is_file() else None


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
                                tags={SWEEP_TAG: str(sweep_dir), ROLE_TAG: "sweep", JOB_TAG: str(config.job)})
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
