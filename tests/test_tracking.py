"""MLflow tracking through a real tracking server: runs, sweeps and compare over HTTP; credentials from
MLflow's own environment variables; a server down at the start stops the run before any work; a server
that goes away mid-run loses nothing, and `embedbench log` sends what the run kept once it is back."""
import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import TrackingServer, free_port, run_main

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny(tiny_model_path):
    """Overrides for quick runs whose scores do not matter: the tiny BERT, 20 STS pairs."""
    return [f"model.name_or_path={tiny_model_path}", "eval=sts", "eval.max_pairs=20"]


def test_train_eval_sweep_and_compare_through_a_tracking_server(tmp_path, tracking_server, tiny):
    logger = [f"logger.tracking_uri={tracking_server.url}", "logger.experiment=served"]
    run_main("train", "trainer=debug", *tiny, *logger, cwd=tmp_path)
    run_main("eval", *tiny, *logger, cwd=tmp_path)
    run_main("train", "-m", "trainer=debug", "loss.temperature=0.02,0.05", *tiny, *logger, cwd=tmp_path)
    client = MlflowClient(tracking_server.url)
    runs = client.search_runs([client.get_experiment_by_name("served").experiment_id])
    assert len(runs) == 5 and all(run.info.status == "FINISHED" for run in runs)  # 2 runs, a sweep of 2 + parent
    train = next(r for r in runs if r.info.run_name.startswith("train trainer=debug"))
    assert "results.json" in {a.path for a in client.list_artifacts(train.info.run_id)}  # artifacts through HTTP
    assert not any(tmp_path.rglob("mlartifacts"))  # the server keeps them, not the working folder
    table = run_main("compare", "served", f"logger.tracking_uri={tracking_server.url}", cwd=tmp_path).stdout
    assert "loss.temperature" in table and "stsb (SLICES: not comparable with full-set scores; 4 runs)" in table


def test_a_server_down_at_the_start_stops_the_run_before_any_work(tmp_path, tiny):
    port = free_port()  # nothing listens there
    proc = run_main("train", "trainer=debug", *tiny, f"logger.tracking_uri=http://127.0.0.1:{port}", cwd=tmp_path,
                    check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("embedbench: error:")]
    assert proc.returncode != 0 and len(errors) == 1
    assert f"logger.tracking_uri=http://127.0.0.1:{port}: cannot reach the tracking server" in errors[0]
    assert not (tmp_path / "outputs").exists()


def test_credentials_come_from_mlflows_variables_and_a_wrong_password_stops_at_once(tmp_path, tiny, monkeypatch):
    ini = tmp_path / "auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = sqlite:///{tmp_path / 'users.db'}\nadmin_username = admin\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    server = TrackingServer(tmp_path / "server", "--app-name", "basic-auth",
                            env={"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_AUTH_ADMIN_PASSWORD": "right-pass-1234",
                                 "MLFLOW_FLASK_SERVER_SECRET_KEY": "embedbench-tests"})
    try:
        uri = f"logger.tracking_uri={server.url}"
        (tmp_path / "refused").mkdir()
        (tmp_path / "allowed").mkdir()
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong-pass-1234")
        refused = run_main("eval", *tiny, uri, cwd=tmp_path / "refused", check=False)
        errors = [line for line in refused.stderr.splitlines() if line.startswith("embedbench: error:")]
        assert refused.returncode != 0 and len(errors) == 1 and "the server refused the credentials (401)" in errors[0]
        assert not (tmp_path / "refused" / "outputs").exists()
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "right-pass-1234")
        run_main("eval", *tiny, uri, cwd=tmp_path / "allowed")
        client = MlflowClient(server.url)
        [run] = client.search_runs([client.get_experiment_by_name("embedbench").experiment_id])
        assert run.info.status == "FINISHED" and "stsb/spearman" in run.data.metrics
    finally:
        server.stop()


def test_a_server_gone_mid_run_loses_nothing_and_log_sends_it_once_back(tmp_path, tracking_server, tiny):
    steps, logger = 30, [f"logger.tracking_uri={tracking_server.url}", "logger.experiment=gone"]
    run = subprocess.Popen([sys.executable, "-m", "embedbench", "train", "trainer=debug", *tiny,
                            f"trainer.max_steps={steps}", *logger, "hydra.run.dir=run"],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env={**os.environ, "PYTHONUNBUFFERED": "1"})
    output = []
    for line in run.stdout:  # the server goes away once training has logged its second step
        output.append(line)
        if f"step 2/{steps}" in line:
            tracking_server.kill()
            break
    output += run.stdout.readlines()
    tracking_server.start()  # back, with the store it had
    assert run.wait() == 0, "".join(output[-30:])  # the run finished its work
    said = [line for line in output if "stopped answering" in line]
    assert len(said) == 1 and "embedbench log" in said[0]
    folder = tmp_path / "run"
    assert (folder / "results.json").is_file() and (folder / "mlflow_pending.jsonl").is_file()

    sent = run_main("log", str(folder), cwd=tmp_path).stdout
    run_id = (folder / ".mlflow_run_id").read_text().strip()
    assert f"sent to run {run_id}" in sent
    client = MlflowClient(tracking_server.url)
    [one] = client.search_runs([client.get_experiment_by_name("gone").experiment_id])
    assert one.info.run_id == run_id and one.info.status == "FINISHED" and "stsb/spearman" in one.data.metrics
    losses = [m.step for m in client.get_metric_history(run_id, "train/loss")]
    assert sorted(losses) == list(range(1, steps + 1))  # every step, none twice
    assert {"results.json", "config.yaml"} <= {a.path for a in client.list_artifacts(run_id)}
    assert "nothing waits to be sent" in run_main("log", str(folder), cwd=tmp_path).stdout
