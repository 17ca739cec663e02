"""MLflow lifecycle: one run per job (under its sweep's parent), FAILED with its error line on error, and a
run that outlives its tracking server.

Every logging call goes through :meth:`Tracker._send`. If the server stops answering mid-run, the run goes
on: what it would have sent is kept, in order, in ``mlflow_pending.jsonl`` in the run folder (artifacts are
files the run folder holds anyway), and ``embedbench log <run folder>`` sends it to the same MLflow run once
the server is back.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from embedbench.config import LoggerConfig
from embedbench.errors import EmbedbenchError, Preempted
from embedbench.tracking_server import check_server, served

log = logging.getLogger("embedbench")
RUN_FILE = ".mlflow_run_id"
PARENT_FILE = ".mlflow_parent_run_id"  # in a sweep's folder: its parent run, opened by embedbench.sweeps
PENDING_FILE = "mlflow_pending.jsonl"
SWEEP_TAG = "embedbench.sweep"
ROLE_TAG = "embedbench.role"
JOB_TAG = "embedbench.job"
ERROR_TAG = "embedbench.error"
EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"
# a server that has gone away is noticed within seconds, not after MLflow's default minutes of retries
QUICK_FAILURE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


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
        location = Path(location).resolve().as_uri() if location and not served(client.tracking_uri) else None
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
    base = uri.rstrip("/") if served(uri) else "http://127.0.0.1:5000"
    # workflowType: the model-training view (the UI otherwise opens on its GenAI pages)
    page = f"{base}/#/experiments/{experiment}/runs{f'/{run_id}' if run_id else ''}?workflowType=machine_learning"
    return page if served(uri) else f"{page} (embedbench ui)"


def flatten(tree, prefix: str = "") -> dict[str, str]:
    items = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            items.update(flatten(value, f"{name}."))
        else:
            items[name] = "null" if value is None else str(value)
    return items


def parent_run(sweep_dir: str | None) -> str | None:
    """The sweep's parent run, opened before the jobs start."""
    parent = Path(sweep_dir) / PARENT_FILE if sweep_dir else None
    return parent.read_text().strip() if parent and parent.is_file() else None


def unreachable(exc: BaseException) -> bool:
    """Whether an MLflow call failed because the server did not answer (not because it refused the call)."""
    import requests

    while exc is not None:
        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
            return True
        if "Max retries exceeded" in str(exc) or "Connection refused" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _log_model(client: MlflowClient, run_id: str, path: str) -> None:
    """The saved model as an MLflow model (sentence-transformers flavour): listed in the UI's Models column,
    registrable, and loaded by ``mlflow.sentence_transformers.load_model("runs:/<id>/model")``."""
    import mlflow.sentence_transformers
    import sentence_transformers
    import torch

    model = sentence_transformers.SentenceTransformer(path, device="cpu")
    # naming the requirements spares MLflow inferring them by loading the model in a subprocess
    requirements = [f"sentence-transformers=={sentence_transformers.__version__}",
                    f"torch=={torch.__version__.split('+')[0]}"]
    # the logged model belongs to the module's current experiment, not the run's: without this it lands in
    # Default, where "runs:/<id>/model" does not find it
    mlflow.set_experiment(experiment_id=client.get_run(run_id).info.experiment_id)
    mlflow.sentence_transformers.log_model(model, name="model", run_id=run_id, pip_requirements=requirements)


def _log_artifact(client: MlflowClient, run_id: str, path: str, folder: str | None) -> None:
    if Path(path).is_dir():
        client.log_artifacts(run_id, path, folder or Path(path).name)
    else:
        client.log_artifact(run_id, path, folder)


SENDERS = {  # operation -> how it reaches the server; the payloads are what the journal holds
    "metrics": lambda c, r, metrics: c.log_batch(r, metrics=[Metric(k, v, t, s) for k, v, t, s in metrics]),
    "params": lambda c, r, params: c.log_batch(r, params=[Param(k, v) for k, v in params.items()]),
    "tags": lambda c, r, tags: c.log_batch(r, tags=[RunTag(k, v) for k, v in tags.items()]),
    "dict": lambda c, r, payload, name: c.log_dict(r, payload, name),
    "artifact": lambda c, r, path, folder=None: _log_artifact(c, r, path, folder),
    "model": lambda c, r, path: _log_model(c, r, path),
    "end": lambda c, r, status: c.set_terminated(r, status),
}


class Tracker:
    """``with Tracker(...) as t:`` starts a run (under the sweep's parent run, if any) and logs the config;
    the run ends FAILED, tagged with its error line, if the body raises. The run folder keeps the run id, so
    a resumed job continues the same run, and what the server missed if it went away."""

    def __init__(self, logger: LoggerConfig, config: dict, run_name: str, folder: Path,
                 sweep_dir: str | None = None, resume_run_id: str | None = None):
        self.logger, self.config, self.run_name = logger, config, run_name
        self.folder, self.sweep_dir = Path(folder), sweep_dir
        self.run_id: str | None = resume_run_id
        self.experiment_id: str | None = None
        self.offline = False

    def __enter__(self) -> Tracker:
        uri = tracking_uri(self.logger)
        if served(uri):
            for name, value in QUICK_FAILURE.items():
                os.environ.setdefault(name, value)
        mlflow.set_tracking_uri(uri)  # model logging goes through MLflow's module-level client
        self.client = MlflowClient(uri)
        if self.run_id:  # resuming: the run, its params and config are already there
            self.experiment_id = self.client.get_run(self.run_id).info.experiment_id
            self.client.update_run(self.run_id, status="RUNNING")
            return self
        parent = parent_run(self.sweep_dir)
        tags = {JOB_TAG: str(self.config.get("job")), **({SWEEP_TAG: self.sweep_dir} if self.sweep_dir else {}),
                **({MLFLOW_PARENT_RUN_ID: parent} if parent else {})}
        run = self.client.create_run(experiment_id(self.client, self.logger), run_name=self.run_name, tags=tags)
        self.run_id, self.experiment_id = run.info.run_id, run.info.experiment_id
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / RUN_FILE).write_text(self.run_id)
        self.log_params(flatten(self.config))
        self._send("dict", payload=self.config, name="config.yaml")
        return self

    @property
    def url(self) -> str:
        return ui_url(tracking_uri(self.logger), self.experiment_id, self.run_id)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        now = int(time.time() * 1000)
        self._send("metrics", metrics=[[key, float(value), now, step or 0] for key, value in metrics.items()])

    def log_series(self, name: str, values: dict[int, float]) -> None:
        """One metric over several steps (a dim curve: step = dim), which the UI draws as a line."""
        now = int(time.time() * 1000)
        self._send("metrics", metrics=[[name, float(value), now, int(step)] for step, value in values.items()])

    def set_tags(self, tags: dict[str, str]) -> None:
        self._send("tags", tags=tags)

    def log_params(self, params: dict[str, str]) -> None:
        """The config's settings, and those known once the model is loaded (the prompts it ships)."""
        if params:
            self._send("params", params={key: value[:self.logger.param_max_len] for key, value in params.items()})

    def log_dict(self, payload: dict, name: str) -> None:
        self._send("dict", payload=payload, name=name)

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        self._send("artifact", path=str(path), folder=folder)

    def log_model(self, folder: Path) -> None:
        """The model saved in ``folder``, as an MLflow model."""
        self._send("model", path=str(folder))

    def _send(self, op: str, **payload) -> None:
        """One logging operation to the server, or, once the server has stopped answering, to the journal."""
        if not self.offline:
            try:
                SENDERS[op](self.client, self.run_id, **payload)
                return
            except Exception as exc:
                if not unreachable(exc):
                    raise
                self.offline = True
                log.warning("MLflow tracking server %s stopped answering: the run goes on, and what it logs waits in "
                            "%s; send it with `embedbench log %s` once the server is back",
                            tracking_uri(self.logger), self.folder / PENDING_FILE, self.folder)
        with open(self.folder / PENDING_FILE, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"op": op, **payload}) + "\n")

    def __exit__(self, exc_type, exc, tb) -> None:
        status = "FINISHED" if exc is None else "KILLED" if isinstance(exc, Preempted) else "FAILED"
        if status == "FAILED":
            self.set_tags({ERROR_TAG: (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]})
        self._send("end", status=status)
        parent = parent_run(self.sweep_dir)
        if status == "FAILED" and parent and not self.offline:
            self.client.set_terminated(parent, "FAILED")


class NullTracker:
    """What ranks other than 0 of a DDP run hold: they train, rank 0 alone writes to MLflow."""

    run_id = None

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_params(self, params: dict[str, str]) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass


def send_pending(folder: Path, logger: LoggerConfig) -> str:
    """``embedbench log <run folder>``: what a run kept while its server was away, sent to its MLflow run.
    Metric points the server already holds (sent just before it went away) are not sent twice."""
    folder = Path(folder)
    journal = folder / PENDING_FILE
    if not (folder / RUN_FILE).is_file():
        raise EmbedbenchError(f"{folder}: no {RUN_FILE}; not an embedbench run folder")
    if not journal.is_file():
        return f"{folder}: nothing waits to be sent"
    uri = tracking_uri(logger)
    check_server(uri, logger.experiment)
    client, run_id = MlflowClient(uri), (folder / RUN_FILE).read_text().strip()
    operations = [json.loads(line) for line in journal.read_text(encoding="utf-8").splitlines() if line.strip()]
    held = {}
    sent = {"metrics": 0, "artifacts": 0}
    for operation in operations:
        op = operation.pop("op")
        if op == "metrics":
            fresh = []
            for key, value, timestamp, step in operation["metrics"]:
                if key not in held:
                    held[key] = {(m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key)}
                if (step, timestamp, value) not in held[key]:
                    fresh.append([key, value, timestamp, step])
            operation["metrics"] = fresh
            sent["metrics"] += len(fresh)
        sent["artifacts"] += op in ("artifact", "dict", "model")
        SENDERS[op](client, run_id, **operation)
    journal.rename(journal.with_name(f"{journal.stem}.sent.jsonl"))
    return (f"sent to run {run_id} at {uri}: {sent['metrics']} metric values, {sent['artifacts']} artifacts, "
            f"{len(operations)} operations in all")
