"""DDP on CPU with gloo: two real processes."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from mlflow.tracking import MlflowClient

from embedbench.config import InfoNCEConfig, ObjectiveConfig, ViewsConfig

QUERIES = ["what causes anemia", "effects of aspirin", "insulin resistance", "vitamin d and bones"]
DOCS = ["Iron deficiency causes anemia.", "Aspirin thins the blood.", "Obesity drives insulin resistance.",
        "Vitamin D helps calcium absorption in bone."]
MRL = ViewsConfig(dims=[384, 64], weights=[1.0, 1.0])
CHECKED = "0.model.encoder.layer.0.attention.self.query.weight"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _objective(model, gather: bool):
    from embedbench.embedding.encoder import LayerEncoder
    from embedbench.embedding.views import build_views
    from embedbench.losses import build_objective

    encoder = LayerEncoder(model)
    views = build_views(MRL, encoder.n_layers, encoder.hidden_size)
    return build_objective(InfoNCEConfig(name="infonce", gather_across_devices=gather), encoder, views,
                           ObjectiveConfig())


def _grad(model, objective, queries, docs) -> torch.Tensor:
    loss = objective([model.preprocess(queries), model.preprocess(docs)])
    loss.backward()
    return dict(model.named_parameters())[CHECKED].grad.clone()


def _rank_grad(rank: int, port: int, bypass_ddp: bool, out: str) -> None:
    """One DDP rank: half of the batch, cross-device negatives, the trainer's way of wrapping the model."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from embedbench.embedding.encoder import load_model

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    model = load_model("default", "cpu").eval()  # no dropout: both sides compute the same function
    objective = _objective(model, gather=True)
    if not bypass_ddp:
        objective.model = DistributedDataParallel(model, find_unused_parameters=True)
    half = slice(2 * rank, 2 * rank + 2)
    torch.save(_grad(model, objective, QUERIES[half], DOCS[half]), f"{out}/grad{rank}.pt")
    dist.destroy_process_group()


def _ddp_grads(tmp_path, bypass_ddp: bool = False) -> list[torch.Tensor]:
    torch.multiprocessing.spawn(_rank_grad, args=(_free_port(), bypass_ddp, str(tmp_path)), nprocs=2)
    return [torch.load(tmp_path / f"grad{rank}.pt") for rank in (0, 1)]


def test_ddp_gradients_equal_the_full_batch_gradient_on_every_rank(tmp_path, minilm):
    """Two ranks with two pairs each, gathering negatives across ranks, end with the gradient one
    process gets from all four pairs (MRL views: two cuts of one forward)."""
    ranks = _ddp_grads(tmp_path)
    minilm.eval()
    minilm.zero_grad()
    full = _grad(minilm, _objective(minilm, gather=False), QUERIES, DOCS)
    minilm.zero_grad()
    scale = full.abs().max()
    for grad in ranks:
        assert (grad - full).abs().max() <= 1e-5 * scale + 1e-7


def test_objective_that_bypasses_the_ddp_wrapper_leaves_ranks_unsynchronised(tmp_path, minilm):
    """The bug class the wrapper guards against: without DDP's forward, each rank keeps its own gradient."""
    grads = _ddp_grads(tmp_path, bypass_ddp=True)
    assert (grads[0] - grads[1]).abs().max() > 1e-3 * grads[0].abs().max()


@pytest.mark.slow
def test_torchrun_two_process_train_logs_once_and_saves_once(tmp_path, scifact_slice, tiny_model_path):
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "embedbench",
         "train", "model=mrl", f"model.name_or_path={tiny_model_path}", "model.views.dims=[32,16]",
         "model.views.weights=[1,1]", f"data.root={scifact_slice}", "trainer=debug", "eval=beir",
         "loss.gather_across_devices=true"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs_root = tmp_path / "outputs" / "runs"
    folders = [p.parent for p in runs_root.rglob(".hydra")]
    assert len(folders) == 1  # both ranks wrote into rank 0's folder
    folder = folders[0]
    assert (folder / "results.json").is_file() and (folder / "model" / "model.safetensors").is_file()
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("embedbench").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert "scifact/ndcg_at_10" in runs[0].data.metrics
    losses = client.get_metric_history(runs[0].info.run_id, "train/loss")
    assert sorted(m.step for m in losses) == [1, 2, 3]  # logged by rank 0 only
    assert proc.stdout.count("embedbench train: finished") == 1  # scored and reported once


LEAVING = """
import os
import sys
import torch
from embedbench import distributed

distributed.init()  # as the CLI does, before the job imports what it runs
from sentence_transformers.util.distributed import all_gather
x = torch.ones(3, requires_grad=True)
all_gather(x, with_grad=True).sum().backward()  # a loss's gather across devices
distributed.leave()
names = [open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")]
with open(os.path.join(sys.argv[1], f"threads.{distributed.rank()}"), "w") as out:
    out.write(" ".join(sorted(names)))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="lists threads through /proc")
def test_leaving_the_group_after_a_gather_with_gradients_stops_its_gloo_threads(tmp_path):
    """Gloo threads left running until the interpreter tears them down can abort a rank after its work is done
    (``terminate called without an active exception``), and torchrun then kills the other ranks mid-work."""
    script = tmp_path / "leave.py"
    script.write_text(LEAVING)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    threads = [(tmp_path / f"threads.{rank}").read_text() for rank in (0, 1)]
    assert all("python" in names and "gloo" not in names for names in threads), threads


def _torchrun(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "embedbench",
         *args], cwd=cwd, capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_torchrun_two_process_eval_scores_as_one_process(tmp_path, scifact_slice):
    """Two gloo ranks each encode a share of every text list (the real MiniLM, layer x dim grid); rank 0
    scores and logs one run whose metrics equal a one-process eval's."""
    from tests.helpers import results_files, run_main

    args = [f"data.root={scifact_slice}", "eval=beir", "eval.grid=full", "eval.cache=false"]
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    run_main("eval", *args, cwd=tmp_path / "one")
    proc = _torchrun("eval", *args, cwd=tmp_path / "two")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(rank 0 of 2)" in proc.stderr  # the first rank's share had a bar, so the work was shared
    one, two = ([json.loads(p.read_text())["metrics"] for p in results_files(tmp_path / name)]
                for name in ("one", "two"))
    assert len(two) == 1 and len(one) == 1
    assert set(two[0]) == set(one[0]) and "scifact/ndcg_at_10/l3_d64" in two[0]
    for name, value in one[0].items():
        if not name.split("/")[1].endswith(("_s", "qps")):  # timings differ; every score is the same
            assert two[0][name] == pytest.approx(value, abs=1e-6), name
    client = MlflowClient(f"sqlite:///{tmp_path}/two/outputs/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("embedbench").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
