"""MLflow lifecycle: one run per Hydra job, sweeps grouped under a parent run, FAILED on error."""
from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
from hydra.experimental.callback import Callback
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from embedbench.config import LoggerConfig

PARENT_FILE = ".mlflow_parent_run_id"
VARYING_FILE = ".sweep_varying.json"
RUN_FILE = ".mlflow_run_id"
SWEEP_TAG = "embedbench.sweep"
ROLE_TAG = "embedbench.role"
JOB_TAG = "embedbench.job"
ERROR_TAG = "embedbench.error"
EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"


def tracking_uri(logger_cfg) -> str:
    """The configured URI, with a relative sqlite path made absolute (and its folder created)."""
    uri = str(logger_cfg.tracking_uri)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = Path(uri[len("sqlite:///"):]).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{path}"
    return uri


def experiment_id(client: MlflowClient, logger_cfg) -> str:
    """The experiment's id, created if needed, and marked as model training so the UI opens on its runs
    (MLflow's own tag; the UI otherwise may open on GenAI traces)."""
    found = client.get_experiment_by_name(logger_cfg.experiment)
    if found is None:
        location = logger_cfg.artifact_location
        location = Path(location).resolve().as_uri() if location else None
        try:
            client.create_experiment(logger_cfg.experiment, artifact_location=location)
        except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel job
            pass
        found = client.get_experiment_by_name(logger_cfg.experiment)
    if found.tags.get(EXPERIMENT_KIND_TAG) != TRAINING_KIND:
        client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)
    return found.experiment_id


def ui_url(uri: str, experiment: str, run_id: str | None = None) -> str:
    """Where the MLflow UI shows the experiment's runs (or one run): the tracking server itself, or the local
    `embedbench ui`."""
    served = uri.startswith(("http://", "https://"))
    base = uri.rstrip("/") if served else "http://127.0.0.1:5000"
    # workflowType: the model-training view (the UI otherwise opens on its GenAI pages)
    page = f"{base}/#/experiments/{experiment}/runs{f'/{run_id}' if run_id else ''}?workflowType=machine_learning"
    return page if served else f"{page} (embedbench ui)"


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
        self.experiment_id: str | None = None

    def __enter__(self) -> Tracker:
        mlflow.set_tracking_uri(tracking_uri(self.logger))
        if self.run_id:  # resuming: the run, its params and config are already there
            self.experiment_id = mlflow.start_run(run_id=self.run_id).info.experiment_id
            return self
        parent = _parent_run(self.sweep_dir)
        tags = {JOB_TAG: str(self.config.get("job")), **({SWEEP_TAG: self.sweep_dir} if self.sweep_dir else {})}
        run = mlflow.start_run(experiment_id=experiment_id(MlflowClient(), self.logger), run_name=self.run_name,
                               parent_run_id=parent, tags=tags)
        self.run_id, self.experiment_id = run.info.run_id, run.info.experiment_id
        if self.run_file:
            self.run_file.parent.mkdir(parents=True, exist_ok=True)
            self.run_file.write_text(self.run_id)
        limit = self.logger.param_max_len
        mlflow.log_params({key: value[:limit] for key, value in flatten(self.config).items()})
        mlflow.log_dict(self.config, "config.yaml")
        return self

    @property
    def url(self) -> str:
        return ui_url(tracking_uri(self.logger), self.experiment_id, self.run_id)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        mlflow.log_metrics({key: float(value) for key, value in metrics.items()}, step=step)

    def log_series(self, name: str, values: dict[int, float]) -> None:
        """One metric over several steps (a dim curve: step = dim), which the UI draws as a line."""
        now = int(time.time() * 1000)
        MlflowClient().log_batch(self.run_id, metrics=[Metric(name, float(v), now, int(step))
                                                       for step, v in values.items()])

    def set_tags(self, tags: dict[str, str]) -> None:
        mlflow.set_tags(tags)

    def log_model(self, model) -> None:
        """The trained model as an MLflow model (sentence-transformers flavour): listed in the UI's Models
        column, registrable, and loaded by ``mlflow.sentence_transformers.load_model``."""
        import mlflow.sentence_transformers
        import sentence_transformers
        import torch

        # naming the requirements spares MLflow inferring them by loading the model in a subprocess
        requirements = [f"sentence-transformers=={sentence_transformers.__version__}",
                        f"torch=={torch.__version__.split('+')[0]}"]
        mlflow.sentence_transformers.log_model(model, name="model", pip_requirements=requirements)

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
        if exc is not None:
            mlflow.set_tag(ERROR_TAG, (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500])
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
    """Opens a parent MLflow run for a Hydra multirun, which each job's run points at, and closes it with
    the sweep's summary: the parameters it varied, the best run by the sweep's objective, and the table of
    its runs (``summary.md``)."""

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
        sweep_dir = Path(config.hydra.sweep.dir).resolve()
        run_id = _parent_run(str(sweep_dir))
        if run_id is None:
            return
        client = MlflowClient(tracking_uri(config.logger))
        summarise_sweep(client, run_id, config.logger, config.sweep.objective)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "FINISHED")


def varying_keys(sweep_dir: str | None) -> list[str]:
    """The settings a sweep varies (``loss.temperature`` for ``loss.temperature=0.02,0.05``)."""
    path = Path(sweep_dir) / VARYING_FILE if sweep_dir else None
    return json.loads(path.read_text()) if path and path.is_file() else []


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
