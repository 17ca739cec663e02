"""Sweeps: one MLflow run per job under one parent, sequential, parallel (joblib) and through submitit."""
import pytest

from tests.helpers import mlflow_runs, results_files, run_main

pytestmark = pytest.mark.slow

SLICE = ["eval.max_pairs=60", "encode.batch_size=16"]


def test_multirun_gives_one_run_per_job_under_one_sweep(tmp_path, scifact_slice):
    run_main("train", "-m", "trainer=debug", f"data.root={scifact_slice}", "loss.temperature=0.02,0.05", *SLICE,
             cwd=tmp_path, check=True)
    runs = mlflow_runs(tmp_path)
    parents = [r for r in runs if r.data.tags.get("embedbench.role") == "sweep"]
    jobs = [r for r in runs if r not in parents]
    assert len(parents) == 1 and len(jobs) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in jobs} == {parents[0].info.run_id}
    assert sorted(r.data.params["loss.temperature"] for r in jobs) == ["0.02", "0.05"]
    assert all(r.info.status == "FINISHED" for r in runs)

    table = run_main("compare", cwd=tmp_path).stdout
    lines = [line for line in table.splitlines() if "FINISHED" in line]
    assert len(lines) == 2 and "loss.temperature" in table and "scifact/ndcg_at_10" in table
    assert any("0.02" in line for line in lines) and any("0.05" in line for line in lines)


def test_parallel_sweep_into_one_sqlite_store_records_every_job(tmp_path, scifact_slice):
    from embedbench.tracking import ROLE_TAG

    temperatures = ["0.02", "0.05"]  # two jobs at once, both writing to the store
    run_main("train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "trainer=debug",
             f"data.root={scifact_slice}", f"loss.temperature={','.join(temperatures)}", cwd=tmp_path)
    jobs = [run for run in mlflow_runs(tmp_path) if run.data.tags.get(ROLE_TAG) != "sweep"]
    assert len(jobs) == 2 and all(run.info.status == "FINISHED" for run in jobs)
    assert sorted(run.data.params["loss.temperature"] for run in jobs) == temperatures
    assert len(results_files(tmp_path)) == 2


def test_sweep_through_submitit_local_executor(tmp_path, scifact_slice):
    run_main("train", "-m", "hydra/launcher=submitit_local", "trainer=debug", f"data.root={scifact_slice}",
             cwd=tmp_path, check=True)
    [job] = [run for run in mlflow_runs(tmp_path) if run.data.tags.get("embedbench.role") != "sweep"]
    assert job.info.status == "FINISHED" and len(results_files(tmp_path)) == 1
