"""The eval job through the CLI: embeddings cached across runs (a damaged or unwritable cache named), scores
named after the data folder, BM25, the bf16 and int8 encoding modes."""
import json

import pytest

from tests.helpers import fill_disk, mlflow_runs, results_files, run_main, small_disk

pytestmark = pytest.mark.slow

SLICE = ["eval.max_pairs=60", "encode.batch_size=16"]


def test_second_identical_eval_reads_the_cache(tmp_path, scifact_slice, tiny_model_path):
    args = ["eval", f"data.root={scifact_slice}", f"model.name_or_path={tiny_model_path}", *SLICE]
    run_main(*args, cwd=tmp_path)
    run_main(*args, cwd=tmp_path)
    first, second = (json.loads(p.read_text())["metrics"] for p in results_files(tmp_path))
    quality = {k: v for k, v in first.items() if not k.endswith(("_s", "_qps"))}
    assert quality == {k: second[k] for k in quality}
    logs = sorted((tmp_path / "outputs" / "runs").rglob("eval.log"))
    assert "embedding cache: 0 hits, 2 misses" in logs[0].read_text()
    assert "embedding cache: 2 hits, 0 misses" in logs[1].read_text()
    run_main(*args, "eval.cache=false", cwd=tmp_path)
    assert "embedding cache" not in sorted((tmp_path / "outputs" / "runs").rglob("eval.log"))[2].read_text()


def test_the_fast_and_int8_modes_score_as_fp32_does_and_are_logged(tmp_path, scifact_slice):
    args = ["eval", f"data.root={scifact_slice}", *SLICE, "eval.cache=false"]
    for mode in ("encode.precision=fp32", "encode=fast", "encode=int8"):
        run_main(*args, mode, cwd=tmp_path)
    fp32, fast, int8 = (json.loads(p.read_text())["metrics"] for p in results_files(tmp_path))
    for metric in ("scifact/ndcg_at_10", "stsb/spearman"):
        assert abs(fast[metric] - fp32[metric]) < 0.01 and abs(int8[metric] - fp32[metric]) < 0.02, metric
    assert [run.data.params["encode.precision"] for run in mlflow_runs(tmp_path)] == ["fp32", "bf16", "int8"]


def test_scores_are_named_after_the_data_folder_and_several_folders_share_one_run(tmp_path, scifact_slice,
                                                                                   tiny_model_path):
    from embedbench.data.beir import load_beir, subsample, write_beir
    from tests.helpers import mlflow_runs

    cranfield = write_beir(tmp_path / "cranfield", subsample(load_beir("s", scifact_slice, "test"), 6, 60, seed=5))
    model = f"model.name_or_path={tiny_model_path}"
    run_main("eval", "eval=beir", model, f"data.root={cranfield}", cwd=tmp_path)
    run_main("eval", "eval=beir", model, f"data.root={scifact_slice}", cwd=tmp_path)
    cranfield_alone, scifact_alone = (json.loads(p.read_text())["metrics"] for p in results_files(tmp_path))
    assert "cranfield/ndcg_at_10" in cranfield_alone and not any(k.startswith("scifact/") for k in cranfield_alone)
    assert mlflow_runs(tmp_path)[0].data.params["data.name"] == "cranfield"

    run_main("eval", "eval=beir", model, f"data.root={scifact_slice}", f"+eval.tasks.cran.root={cranfield}",
             "+eval.tasks.cran.type=retrieval", "eval.suite=both", cwd=tmp_path)
    both = json.loads(results_files(tmp_path)[-1].read_text())["metrics"]
    assert both["cran/ndcg_at_10"] == pytest.approx(cranfield_alone["cranfield/ndcg_at_10"], abs=1e-9)
    assert both["scifact/ndcg_at_10"] == pytest.approx(scifact_alone["scifact/ndcg_at_10"], abs=1e-9)
    assert both["cran/ndcg_at_10"] != both["scifact/ndcg_at_10"]
    assert both["both/average"] == pytest.approx((both["scifact/ndcg_at_10"] + both["cran/ndcg_at_10"]) / 2)


def test_bm25_is_scored_through_the_same_retrieval_task(tmp_path, scifact_slice):
    run_main("eval", "model=bm25", "eval=beir", f"data.root={scifact_slice}", cwd=tmp_path)
    metrics = json.loads(results_files(tmp_path)[0].read_text())["metrics"]
    assert 0 < metrics["scifact/ndcg_at_10"] <= 1 and not any("/d" in k for k in metrics)
    refused = run_main("eval", "model=bm25", "eval=sts", cwd=tmp_path, check=False)
    assert refused.returncode != 0 and "model=bm25 has no embeddings" in refused.stderr


def test_save_runs_writes_each_ranking_as_a_trec_run_beside_the_results_and_in_mlflow(tmp_path, scifact_slice):
    from mlflow.tracking import MlflowClient

    from tests.helpers import mlflow_runs

    run_main("eval", "model=bm25", "eval=beir", f"data.root={scifact_slice}", "eval.save_runs=true", cwd=tmp_path)
    [results] = results_files(tmp_path)
    lines = (results.parent / "runs" / "scifact.trec").read_text().splitlines()
    assert lines and all(len(line.split()) == 6 and line.split()[1] == "Q0" for line in lines)
    [run] = mlflow_runs(tmp_path)
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    assert [a.path for a in client.list_artifacts(run.info.run_id, "runs")] == ["runs/scifact.trec"]
    run_main("eval", "model=bm25", "eval=beir", f"data.root={scifact_slice}", cwd=tmp_path)
    assert not (results_files(tmp_path)[-1].parent / "runs").exists()  # off by default


def test_a_full_disk_for_the_embedding_cache_stops_naming_the_entry(tmp_path, tiny_model_path):
    with small_disk(tmp_path / "disk", "1m") as disk:
        fill_disk(disk)
        proc = run_main("eval", "eval=sts", "eval.max_pairs=20", f"model.name_or_path={tiny_model_path}",
                        f"eval.cache_dir={disk}/cache", cwd=tmp_path, check=False)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("embedbench: error:")]
        assert proc.returncode != 0 and len(errors) == 1 and "Traceback" not in proc.stderr
        assert f"{disk}/cache/" in errors[0] and ".npy: no space left on device" in errors[0]
        assert not list(disk.rglob("*.npy")) and not list(disk.rglob("*.tmp"))
