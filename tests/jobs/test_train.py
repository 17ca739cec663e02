"""The train job through the CLI: MiniLM on a SciFact slice, a real MLflow sqlite store in a temp folder."""
import json

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import mlflow_runs, results_files, run_main

pytestmark = pytest.mark.slow

SLICE = ["eval.max_pairs=60", "encode.batch_size=16"]


def test_train_then_eval_the_run_folder(tmp_path, scifact_slice):
    out = run_main("train", "model=mrl", f"data.root={scifact_slice}", "trainer.max_steps=2", "trainer.batch_size=8",
                   "trainer.max_examples=24", "trainer.log_every=1", "trainer.save_every=1", "logger.log_model=true",
                   "eval.baseline=true", *SLICE, cwd=tmp_path).stdout
    [results] = results_files(tmp_path)
    payload = json.loads(results.read_text())
    metrics = payload["metrics"]
    for name in ("scifact/ndcg_at_10", "scifact/ndcg_at_10/d64", "scifact/recall_at_100", "scifact/mrr_at_10",
                 "scifact/map_at_100", "stsb/spearman", "stsb/spearman/d32"):
        assert 0.0 <= metrics[name] <= 1.0, name
    run_dir = results.parent
    assert (run_dir / "metric_vs_dim.png").stat().st_size > 1000
    assert not (run_dir / "checkpoints").exists()  # a run that succeeded keeps its model, not its checkpoints
    # the report: where the run is, its MLflow run, a row per view, the slice marked, the change per view
    [run] = mlflow_runs(tmp_path)
    assert f"run folder  {run_dir}" in out and run.info.run_id in out and "stsb  (SLICE: 60 of 1,379 pairs)" in out
    d64 = next(line for line in out.splitlines() if line.strip().startswith("d64 ") and "." in line)
    change = metrics["scifact/ndcg_at_10/d64"] - payload["baseline"]["scifact/ndcg_at_10/d64"]
    assert d64.split()[-1] == f"{change:+.5f}"
    assert run.info.run_id == payload["mlflow_run_id"] and run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "mrl" and run.data.params["loss.temperature"] == "0.05"
    assert run.data.metrics["scifact/ndcg_at_10/d64"] == pytest.approx(metrics["scifact/ndcg_at_10/d64"])
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 2  # one per step
    assert len(client.get_metric_history(run.info.run_id, "train/loss/d64")) == 2  # and each view's term
    assert run.data.metrics["baseline/scifact/ndcg_at_10"] == payload["baseline"]["scifact/ndcg_at_10"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "results.json", "plots", "train.log"} <= artifacts
    assert "embedbench train: finished" in open(client.download_artifacts(run.info.run_id, "train.log",
                                                                          str(tmp_path))).read()

    import mlflow.sentence_transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(run_dir / "model"), device="cpu")
    assert model.encode(["x"]).shape == (1, 384)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    logged = mlflow.sentence_transformers.load_model(f"runs:/{run.info.run_id}/model")  # an MLflow model too
    assert (logged.encode(["x"]) == model.encode(["x"])).all()

    # eval of the run's folder scores the trained model identically, and a layer x dim grid from the same pass
    run_main("eval", "model=mrl", f"model.name_or_path={run_dir}", "eval.grid=full",
             f"data.root={scifact_slice}", *SLICE, cwd=tmp_path)
    [evaluated] = [r for r in results_files(tmp_path) if r != results]
    again = json.loads(evaluated.read_text())["metrics"]
    assert again["scifact/ndcg_at_10/d64"] == pytest.approx(metrics["scifact/ndcg_at_10/d64"], abs=1e-6)
    assert again["scifact/ndcg_at_10"] == pytest.approx(metrics["scifact/ndcg_at_10"], abs=1e-6)
    assert len([m for m in again if m.startswith("scifact/ndcg_at_10")]) == 30
    assert 0 <= again["scifact/ndcg_at_10/l3_d128"] <= 1
    assert (evaluated.parent / "grid_scifact.png").stat().st_size > 1000


def test_same_config_and_seed_give_identical_metrics(tmp_path, scifact_slice):
    timings = ("eval_s", "index_build_s", "search_qps", "seconds")
    scores = []
    for name in ("first", "second"):
        run_main("train", "trainer=debug", f"data.root={scifact_slice}", "eval.cache=false",
                f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
        metrics = json.loads((tmp_path / name / "results.json").read_text())["metrics"]
        scores.append({k: v for k, v in metrics.items() if not k.split("/")[1].startswith(timings)})
    assert scores[0] == scores[1] and "scifact/ndcg_at_10" in scores[0]


def test_killed_run_resumes_to_the_same_scores_in_one_mlflow_run(tmp_path, scifact_slice):
    import os
    import signal
    import subprocess
    import sys
    import time

    steps = ["train", "trainer=debug", f"data.root={scifact_slice}", "trainer.max_steps=8", "trainer.save_every=2",
             "trainer.log_every=1", "eval.cache=false"]
    run_main(*steps, f"hydra.run.dir={tmp_path / 'straight'}", cwd=tmp_path)

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "embedbench", *steps, f"hydra.run.dir={killed}"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.time() + 600
    while not (killed / "checkpoints" / "checkpoint-4" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its 4th step checkpoint"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists()

    run_main(*steps, f"trainer.resume={killed}", cwd=tmp_path)
    straight, resumed = (json.loads((tmp_path / name / "results.json").read_text())["metrics"]
                         for name in ("straight", "killed"))
    for metric in ("scifact/ndcg_at_10", "stsb/spearman"):
        assert resumed[metric] == pytest.approx(straight[metric], abs=0.002), metric
    runs = mlflow_runs(tmp_path)
    assert len(runs) == 2 and all(run.info.status == "FINISHED" for run in runs)
    losses = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db").get_metric_history(
        json.loads((killed / "results.json").read_text())["mlflow_run_id"], "train/loss")
    assert max(m.step for m in losses) == 8  # the resumed run's steps continue the killed run's


def test_tas_b_recipe_mines_scores_and_trains_then_reuses_the_mined_set(tmp_path, scifact_slice):
    """The whole distillation path through the CLI: mined negatives, BM25 teacher, TAS-B batches, Margin-MSE."""
    args = ["train", "experiment=recipe_tas_b", f"data.root={scifact_slice}", "trainer.max_steps=2",
             "trainer.batch_size=8", "trainer.max_examples=24", "data.tas_balanced.clusters=3",
            "logger.log_model=false", "eval.max_queries=10"]
    first = run_main(*args, cwd=tmp_path)
    log = first.stdout + first.stderr  # Hydra's log handler writes to stdout
    assert "hard negatives: 24 pairs mined" in log and "teacher scores: 24 rows scored by bm25" in log
    stored = sorted(p.name for p in (tmp_path / "outputs" / "mined").iterdir())
    assert len(stored) == 2  # the mined set and its teacher scores
    second = run_main(*args, cwd=tmp_path)
    log = second.stdout + second.stderr
    assert "hard negatives: 24 pairs read from" in log and "teacher scores: read from" in log
    assert sorted(p.name for p in (tmp_path / "outputs" / "mined").iterdir()) == stored
    runs = mlflow_runs(tmp_path)
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    assert runs[0].data.params["loss.name"] == "margin_mse" and runs[0].data.params["data.sampler"] == "tas_balanced"
    assert 0 <= runs[0].data.metrics["scifact/ndcg_at_10/d64"] <= 1 and runs[0].data.metrics["train/seconds"] > 0

