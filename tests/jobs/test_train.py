"""The train job through the CLI: MiniLM on a SciFact slice, a real MLflow sqlite store in a temp folder."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from mlflow.tracking import MlflowClient

from embedbench.embedding.encoder import native_bf16
from embedbench.errors import EmbedbenchError
from embedbench.jobs.train import training_bf16
from tests.helpers import fill_disk, mlflow_runs, resize_disk, results_files, run_main, small_disk

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
    assert run.data.tags["trainer.precision"] == ("bf16" if native_bf16("cpu") else "fp32")  # trainer.bf16=auto
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


def test_bf16_auto_is_bf16_where_it_is_native_and_an_explicit_setting_wins():
    assert training_bf16("auto", "cuda") and not training_bf16(False, "cuda") and training_bf16(True, "cpu")
    assert training_bf16("auto", "cpu") == torch.cpu._is_avx512_bf16_supported()
    assert not training_bf16("auto", "mps")


def test_fp16_weights_train_without_bf16_autocast(tmp_path, scifact_slice, tiny_model_path):
    """Autocast would hand fp16 LayerNorms bf16 activations ("mixed dtype (CPU)"): auto leaves it off, and
    asking for it is refused in one line. Fine-tuning 16-bit weights in full is warned of: at lr 2e-5 most
    updates are below their resolution."""
    assert not training_bf16("auto", "cuda", torch.float16) and not training_bf16("auto", "cpu", torch.float16)
    with pytest.raises(EmbedbenchError, match=r"trainer\.bf16=true: the weights are fp16 \(model\.dtype\)"):
        training_bf16(True, "cpu", torch.float16)
    args = ["trainer=debug", "model.dtype=fp16", f"model.name_or_path={tiny_model_path}",
            f"data.root={scifact_slice}", "eval=beir"]
    run_main("train", *args, f"hydra.run.dir={tmp_path / 'full'}", cwd=tmp_path)
    assert 0 <= json.loads((tmp_path / "full" / "results.json").read_text())["metrics"]["scifact/ndcg_at_10"] <= 1
    assert "full fine-tuning updates the float16 weights in place" in (tmp_path / "full" / "train.log").read_text()
    run_main("train", *args, "model.lora.r=4", f"hydra.run.dir={tmp_path / 'lora'}", cwd=tmp_path)
    assert "full fine-tuning" not in (tmp_path / "lora" / "train.log").read_text()


def test_same_config_and_seed_give_identical_metrics_with_dropout_drawn_as_on_cpu(tmp_path, scifact_slice,
                                                                                  tiny_model_path):
    model = tmp_path / "model"  # the tiny model with dropout, on hidden states and attention probabilities
    shutil.copytree(tiny_model_path, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.1,
                                                   "attention_probs_dropout_prob": 0.1}))
    timings = ("eval_s", "index_build_s", "search_qps", "seconds")
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    scores, losses = [], []
    for name, dropout in (("first", "true"), ("second", "true"), ("torch", "false")):
        run_main("train", "trainer=debug", f"model.name_or_path={model}", f"data.root={scifact_slice}",
                 "eval.cache=false", f"trainer.fast_dropout={dropout}", f"hydra.run.dir={tmp_path / name}",
                 cwd=tmp_path)
        results = json.loads((tmp_path / name / "results.json").read_text())
        scores.append({k: v for k, v in results["metrics"].items() if not k.split("/")[1].startswith(timings)})
        losses.append([m.value for m in client.get_metric_history(results["mlflow_run_id"], "train/loss")])
    assert scores[0] == scores[1] and "scifact/ndcg_at_10" in scores[0]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    assert losses[2] != losses[0]  # the masks are embedbench's own, not torch's


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, scifact_slice, tiny_model_path):
    """(folder, overrides, metrics of the run uninterrupted) for runs to stop mid-training and continue."""
    folder = tmp_path_factory.mktemp("interrupted")
    steps = ["train", "trainer=debug", f"model.name_or_path={tiny_model_path}", f"data.root={scifact_slice}",
             "trainer.max_steps=40", "trainer.log_every=1", "eval.cache=false", "eval=sts", "eval.max_pairs=40"]
    run_main(*steps, "trainer.save_every=10", f"hydra.run.dir={folder / 'straight'}", cwd=folder)
    return folder, steps, json.loads((folder / "straight" / "results.json").read_text())["metrics"]


def _spawn(folder, *args):
    return subprocess.Popen([sys.executable, "-m", "embedbench", *args], cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_killed_run_resumes_to_the_same_scores_in_one_mlflow_run(interrupted):
    folder, steps, straight = interrupted
    killed = folder / "killed"
    proc = _spawn(folder, *steps, "trainer.save_every=10", f"hydra.run.dir={killed}")
    deadline = time.time() + 600
    while not (killed / "checkpoints" / "checkpoint-10").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "results.json").exists()

    run_main(*steps, "trainer.save_every=10", f"trainer.resume={killed}", cwd=folder)
    resumed = json.loads((killed / "results.json").read_text())
    assert resumed["metrics"]["stsb/spearman"] == pytest.approx(straight["stsb/spearman"], abs=0.002)
    client = MlflowClient(f"sqlite:///{folder}/outputs/mlflow.db")
    run = client.get_run(resumed["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert max(m.step for m in client.get_metric_history(run.info.run_id, "train/loss")) == 40  # one run, continued


def test_a_preempted_run_checkpoints_exits_for_requeue_and_resume_auto_continues_it(interrupted):
    """SIGTERM, as Slurm sends before preempting a job or at its time limit (SIGUSR1 takes the same path)."""
    folder, steps, straight = interrupted
    proc = _spawn(folder, *steps)  # no periodic checkpoints: the signal's is the only one
    output = []
    for line in proc.stdout:
        output.append(line)
        if "step 10/40" in line:
            proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 75, "".join(output[-20:])  # EX_TEMPFAIL: requeue me
    stopped = [line for line in output if line.startswith("embedbench: stopped:")]
    assert len(stopped) == 1 and "training stopped by SIGTERM at step" in stopped[0]
    [run_dir] = [p.parents[1] for p in (folder / "outputs" / "runs").rglob("checkpoints/checkpoint-*")]
    step = int(next(run_dir.glob("checkpoints/checkpoint-*")).name.split("-")[1])
    assert 10 <= step < 40 and not (run_dir / "results.json").exists()
    run_id = (run_dir / ".mlflow_run_id").read_text().strip()
    client = MlflowClient(f"sqlite:///{folder}/outputs/mlflow.db")
    assert client.get_run(run_id).info.status == "KILLED"

    # the requeued job: the same command with trainer.resume=auto finds it and continues it
    out = run_main(*steps, "trainer.resume=auto", cwd=folder).stdout
    assert f"continuing the run in {run_dir}" in out
    resumed = json.loads((run_dir / "results.json").read_text())
    assert resumed["mlflow_run_id"] == run_id and client.get_run(run_id).info.status == "FINISHED"
    assert resumed["metrics"]["stsb/spearman"] == pytest.approx(straight["stsb/spearman"], abs=0.002)
    assert sorted(m.step for m in client.get_metric_history(run_id, "train/loss")) == list(range(1, 41))


def test_the_signal_handler_asks_for_a_checkpoint_at_the_end_of_the_step(tmp_path):
    from transformers import TrainerControl

    from embedbench.jobs.train import StopOnSignal

    stopper, control = StopOnSignal(), TrainerControl()
    before = signal.getsignal(signal.SIGUSR1)
    stopper.on_train_begin(None, None, control)
    os.kill(os.getpid(), signal.SIGUSR1)
    stopper.on_step_end(None, None, control)
    stopper.on_train_end(None, None, control)
    assert stopper.received == "SIGUSR1" and control.should_save and control.should_training_stop
    assert signal.getsignal(signal.SIGUSR1) is before


def test_a_full_disk_while_checkpointing_stops_naming_the_checkpoint_and_the_run_resumes(tmp_path, scifact_slice,
                                                                                        tiny_model_path):
    with small_disk(tmp_path / "disk", "20m") as disk:  # one checkpoint of the tiny model (~12 MB) fits, not two
        steps = ["train", "trainer=debug", f"model.name_or_path={tiny_model_path}", f"data.root={scifact_slice}",
                 "trainer.max_steps=4", "trainer.save_every=1", "eval=sts", "eval.max_pairs=20",
                 f"hydra.run.dir={disk / 'run'}"]
        proc = run_main(*steps, cwd=tmp_path, check=False)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("embedbench: error:")]
        assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-2000:]
        assert f"{disk / 'run' / 'checkpoints'}/checkpoint-2: no space left on device" in errors[0]
        assert "Traceback" not in proc.stderr
        checkpoints = sorted(p.name for p in (disk / "run" / "checkpoints").iterdir())
        assert checkpoints == ["checkpoint-1"]  # whole; the half-written one is gone
        json.loads((disk / "run" / "checkpoints" / "checkpoint-1" / "trainer_state.json").read_text())
        [failed] = mlflow_runs(tmp_path)
        assert failed.info.status == "FAILED" and "no space left" in failed.data.tags["embedbench.error"]

        resize_disk(disk, "80m")  # room again
        run_main(*steps, f"trainer.resume={disk / 'run'}", cwd=tmp_path)
        assert (disk / "run" / "results.json").is_file()
        [run] = mlflow_runs(tmp_path)
        losses = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db").get_metric_history(run.info.run_id,
                                                                                              "train/loss")
        # step 2 ran twice: once before the disk filled while checkpointing it, once after the resume
        assert run.info.status == "FINISHED" and {m.step for m in losses} == {1, 2, 3, 4}


def test_a_full_disk_while_storing_mined_negatives_stops_naming_the_file(tmp_path, scifact_slice, tiny_model_path):
    with small_disk(tmp_path / "disk", "1m") as disk:
        fill_disk(disk)
        proc = run_main("train", "trainer=debug", f"model.name_or_path={tiny_model_path}",
                        f"data.root={scifact_slice}", "data.negatives=mined", f"data.mining.model={tiny_model_path}",
                        f"data.mining.store={disk}", "eval=sts", cwd=tmp_path, check=False)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("embedbench: error:")]
        assert proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr
        assert f"{disk}/scifact-" in errors[0] and ".jsonl: no space left on device" in errors[0]
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # nothing half-written


def test_tas_b_recipe_mines_scores_and_trains_then_reuses_the_mined_set(tmp_path, scifact_slice, tiny_model_path):
    """The whole distillation path through the CLI: mined negatives, BM25 teacher, TAS-B batches, Margin-MSE."""
    args = ["train", "experiment=recipe_tas_b", f"data.root={scifact_slice}", "trainer.max_steps=2",
            "trainer.batch_size=8", "trainer.max_examples=24", "data.tas_balanced.clusters=3",
            "logger.log_model=false", "eval.max_queries=10", f"model.name_or_path={tiny_model_path}",
            f"data.mining.model={tiny_model_path}", "model.views.dims=[32,16]", "model.views.weights=[1,1]"]
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
    assert 0 <= runs[0].data.metrics["scifact/ndcg_at_10/d16"] <= 1 and runs[0].data.metrics["train/seconds"] > 0

