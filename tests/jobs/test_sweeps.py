"""Sweeps: one MLflow run per job under one parent that sums the sweep up; sequential, parallel (joblib),
through submitit and Optuna; the runs compared in the terminal and in the MLflow UI (a real browser)."""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import mlflow_runs, results_files, run_cli, run_main

pytestmark = pytest.mark.slow

SLICE = ["eval.max_pairs=60", "encode.batch_size=16"]


@pytest.fixture
def tiny(tiny_model_path):
    """Overrides for quick runs whose scores do not matter: the tiny BERT, 20 STS pairs."""
    return [f"model.name_or_path={tiny_model_path}", "eval=sts", "eval.max_pairs=20"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, scifact_slice, tiny_model_path):
    """A folder holding the store of one finished two-job sweep over the loss temperature (Matryoshka views
    of the tiny BERT: 32, 16, 8)."""
    folder = tmp_path_factory.mktemp("sweep")
    run_main("train", "-m", "trainer=debug", "model=mrl", f"model.name_or_path={tiny_model_path}",
             "model.views.dims=[32,16,8]", "model.views.weights=[1,1,1]", f"data.root={scifact_slice}",
             "loss.temperature=0.02,0.05", *SLICE, cwd=folder)
    return folder


def test_multirun_gives_one_run_per_job_under_a_parent_that_sums_the_sweep_up(sweep):
    runs = mlflow_runs(sweep)
    parents = [r for r in runs if r.data.tags.get("embedbench.role") == "sweep"]
    jobs = [r for r in runs if r not in parents]
    assert len(parents) == 1 and len(jobs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    parent = parents[0]
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parent.info.run_id}
    assert sorted(r.data.params["loss.temperature"] for r in jobs) == ["0.02", "0.05"]
    # the names lead with what differs, which the UI would otherwise cut off
    assert sorted(r.info.run_name.split(" | ")[0] for r in jobs) == ["loss.temperature=0.02", "loss.temperature=0.05"]
    top = max(r.data.metrics["scifact/ndcg_at_10"] for r in jobs)
    [best] = [r for r in jobs if r.info.run_id == parent.data.tags["embedbench.best_run"]]
    assert best.data.metrics["scifact/ndcg_at_10"] == parent.data.metrics["best/scifact/ndcg_at_10"] == top
    assert parent.data.params["sweep.varying"] == "loss.temperature"
    client = MlflowClient(f"sqlite:///{sweep}/outputs/mlflow.db")
    summary = open(client.download_artifacts(parent.info.run_id, "summary.md", str(sweep))).read()
    assert "loss.temperature |" in summary and all(job.info.run_id[:8] in summary for job in jobs)
    # per-view curves as one series each (step = dim), which the UI overlays across the jobs
    curve = client.get_metric_history(jobs[0].info.run_id, "scifact/ndcg_at_10/by_dim")
    assert sorted(m.step for m in curve) == [8, 16, 32]
    assert {m.step: m.value for m in curve}[16] == jobs[0].data.metrics["scifact/ndcg_at_10/d16"]
    assert {"train/loss/full", "train/loss/d16", "train/loss/d8"} <= set(jobs[0].data.metrics)


def test_compare_lists_the_sweep_as_slices_best_first(sweep):
    table = run_main("compare", cwd=sweep).stdout
    assert "SLICES: not comparable with full-set scores; 2 runs" in table
    rows = [line for line in table.splitlines() if re.search(r"\b0\.0[25]\b", line)]
    assert len(rows) == 2 and "loss.temperature" in table and "scifact/ndcg_at_10" in table
    scores = [float(line.split()[1]) for line in rows]
    assert scores == sorted(scores, reverse=True)
    csv = run_main("compare", "--format", "csv", "--metrics", "scifact/ndcg_at_10*", cwd=sweep).stdout
    header = csv.splitlines()[0].split(",")
    assert {"scifact/ndcg_at_10", "scifact/ndcg_at_10/d16", "loss.temperature", "group"} <= set(header)
    assert "stsb/spearman" not in header and len(csv.splitlines()) == 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1600,1000", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    yield chrome
    chrome.quit()


def test_the_mlflow_ui_shows_the_sweep_its_metrics_and_the_dim_curve(sweep, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    ui = subprocess.Popen([sys.executable, "-m", "embedbench", "ui", "--port", str(port)], cwd=sweep,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
    try:
        page = re.search(r"at (http://\S+)", ui.stdout.readline()).group(1)
        assert "workflowType=machine_learning" in page  # the model-training view, not GenAI traces
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert ui.poll() is None and time.time() < deadline, "embedbench ui did not come up"
                time.sleep(1)
        wait = WebDriverWait(browser, 60)
        browser.get(page)
        # the sweep's parent run, expanded to its two jobs
        expander = "button[data-component-id*='runnamecellrenderer']"
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, expander))[0].click()

        def jobs(b):
            rows = [r for r in b.find_elements(By.CSS_SELECTOR, "div[role=row]")
                    if "loss.temperature=" in r.text and "sweep" not in r.text]
            return rows if len(rows) == 2 else False

        for row in wait.until(jobs):
            row.find_element(By.CSS_SELECTOR, "input.ag-checkbox-input").click()
        browser.save_screenshot(str(tmp_path / "runs.png"))
        # the compare view of the two jobs: both runs, the metrics
        wait.until(lambda b: [x for x in b.find_elements(By.CSS_SELECTOR, "button") if x.text.strip() == "Compare"]
                   )[0].click()
        wait.until(lambda b: "compare-runs" in b.current_url and "Run details" in b.page_source)
        wait.until(lambda b: "scifact/bytes_per_vec" in b.page_source)  # the metric table has rendered
        browser.save_screenshot(str(tmp_path / "compare.png"))
        assert browser.page_source.count("loss.temperature=0.0") >= 2
        # the dim curve: one chart, a line per job
        browser.get(page)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "input[type=radio][value=CHART]"))
        browser.execute_script("arguments[0].click();",
                               browser.find_element(By.CSS_SELECTOR, "input[type=radio][value=CHART]"))
        search = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "input[placeholder='Search metric charts']"))
        search[0].send_keys("ndcg_at_10/by_dim")
        wait.until(lambda b: b.find_elements(By.XPATH, "//*[text()='scifact/ndcg_at_10/by_dim']"))
        traces = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer .trace"))
        browser.save_screenshot(str(tmp_path / "dim_curve.png"))
        assert len(traces) >= 2
    finally:
        ui.terminate()
        ui.wait(timeout=30)


def test_optuna_maximises_the_objective_and_the_parent_names_the_best_trial(tmp_path, scifact_slice, tiny):
    run_main("train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=3", "hydra.sweeper.sampler.seed=1",
             "loss.temperature=interval(0.01,0.1)", "trainer=debug", f"data.root={scifact_slice}",
             "sweep.objective=stsb/spearman", *tiny, cwd=tmp_path)
    runs = mlflow_runs(tmp_path)
    [parent] = [r for r in runs if r.data.tags.get("embedbench.role") == "sweep"]
    trials = [r for r in runs if r is not parent]
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in trials)
    assert len({r.data.params["loss.temperature"] for r in trials}) == 3  # drawn by Optuna from the interval
    [best] = [r for r in trials if r.info.run_id == parent.data.tags["embedbench.best_run"]]
    assert best.data.metrics["stsb/spearman"] == max(r.data.metrics["stsb/spearman"] for r in trials)
    [result] = (tmp_path / "outputs" / "multirun").rglob("optimization_results.yaml")
    assert f"best_value: {best.data.metrics['stsb/spearman']}" in result.read_text()  # Optuna saw the same


@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_eight_jobs_two_at_a_time_into_one_store_lose_nothing(store, tmp_path, scifact_slice, tiny, tracking_server):
    temperatures = [f"0.0{i}" for i in range(1, 9)]
    logger = [f"logger.tracking_uri={tracking_server.url}", f"logger.experiment=jobs-{tmp_path.name}"] \
        if store == "server" else []
    # a child process, as a user runs it: the joblib workers are its own, started in its folder
    out = run_cli("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer=debug",
                  f"data.root={scifact_slice}", f"loss.temperature={','.join(temperatures)}", *tiny, *logger,
                  cwd=tmp_path)
    assert "database is locked" not in out.stdout + out.stderr
    client = MlflowClient(tracking_server.url if store == "server" else f"sqlite:///{tmp_path}/outputs/mlflow.db")
    experiment = client.get_experiment_by_name(f"jobs-{tmp_path.name}" if store == "server" else "embedbench")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if r.data.tags.get("embedbench.role") == "sweep"]
    jobs = [r for r in runs if r is not parent]
    assert len(jobs) == 8 and all(r.info.status == "FINISHED" for r in [parent, *jobs])
    assert {r.data.tags.get("mlflow.parentRunId") for r in jobs} == {parent.info.run_id}
    assert sorted(r.data.params["loss.temperature"] for r in jobs) == temperatures
    for job in jobs:  # every metric of every job arrived
        assert "stsb/spearman" in job.data.metrics and "train/seconds" in job.data.metrics
        assert [m.step for m in client.get_metric_history(job.info.run_id, "train/loss")] == [1, 2, 3]
    assert len(results_files(tmp_path)) == 8


def test_sweep_through_submitit_local_executor(tmp_path, scifact_slice, tiny):
    run_main("train", "-m", "hydra/launcher=submitit_local", "trainer=debug", f"data.root={scifact_slice}", *tiny,
             cwd=tmp_path)
    [job] = [run for run in mlflow_runs(tmp_path) if run.data.tags.get("embedbench.role") != "sweep"]
    assert job.info.status == "FINISHED" and len(results_files(tmp_path)) == 1
