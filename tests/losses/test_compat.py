"""Backward-compatible training: the compatibility term against a direct computation, and a train run with it."""
import json

import pytest
import torch
import torch.nn.functional as F

from embedbench.config import InfoNCEConfig, ObjectiveConfig, ViewsConfig
from embedbench.embedding.views import build_views, cut
from embedbench.losses import build_objective
from embedbench.losses.compat import CompatTerm
from embedbench.losses.infonce import InfoNCE
from tests.helpers import run_main

ANCHORS = ["what causes anemia", "effects of aspirin", "insulin resistance"]
POSITIVES = ["Iron deficiency causes anemia.", "Aspirin thins the blood.", "Obesity drives insulin resistance."]


def test_compat_term_contrasts_each_views_queries_with_the_references_documents(minilm, encoder):
    views = build_views(ViewsConfig(dims=[384, 64], weights=[1.0, 0.5]), encoder.n_layers, encoder.hidden_size)
    objective = build_objective(InfoNCEConfig(name="infonce"), encoder, views, ObjectiveConfig())
    reference = torch.randn(10, 384, generator=torch.Generator().manual_seed(0))  # the reference's 10 documents
    objective.compat = CompatTerm({encoder.n_layers: reference}, views, weight=0.3, temperature=0.05)
    rows = torch.tensor([7, 2, 5])  # the batch's pairs are rows 7, 2 and 5 of the training set
    features = [minilm.preprocess(ANCHORS), minilm.preprocess(POSITIVES)]
    with torch.no_grad():
        loss = objective(features, rows).item()
        q, p = (minilm(minilm.preprocess(t))["sentence_embedding"] for t in (ANCHORS, POSITIVES))
    base, target = InfoNCE(0.05), torch.arange(3)
    expected = 0.0
    for dim, weight in ((384, 1.0), (64, 0.5)):
        compat = F.cross_entropy(cut(q, dim) @ cut(reference[rows], dim).T / 0.05, target)
        expected += weight * (base([cut(q, dim), cut(p, dim)]) + 0.3 * compat)
    assert loss == pytest.approx(expected.item(), rel=1e-4)
    assert set(objective.pop_terms()) == {"train/loss/full", "train/loss/d64", "train/loss/compat"}


def test_training_with_the_compat_term_logs_it_and_scores_compatibility(tmp_path, scifact_slice, tiny_model_path):
    run_main("train", f"model.name_or_path={tiny_model_path}", f"data.root={scifact_slice}", "trainer=debug",
             "eval=beir", f"loss.compat.reference={tiny_model_path}", f"eval.compat.reference={tiny_model_path}",
             "hydra.run.dir=run", cwd=tmp_path)
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert {"scifact/ndcg_at_10/compat", "scifact/ndcg_at_10/reference", "scifact/compatible"} <= set(metrics)
    history = (tmp_path / "run" / "train.log").read_text()
    assert "compat" in history


def test_compat_term_refuses_a_loss_it_is_not_built_for(tmp_path, scifact_slice, tiny_model_path):
    proc = run_main("train", f"model.name_or_path={tiny_model_path}", f"data.root={scifact_slice}", "trainer=debug",
                    "loss=margin_mse", "data.negatives=mined", "data.teacher.kind=bm25",
                    f"loss.compat.reference={tiny_model_path}", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "loss.compat.reference: the compatibility term is built for loss=infonce" in proc.stderr
