"""Compatibility evaluation: a new model's queries against a reference model's documents, checked by hand."""
import json

import numpy as np
import pytest
import pytrec_eval
import torch

from tests.helpers import results_files, run_main


def _ndcg10(queries: np.ndarray, docs: np.ndarray, qids, doc_ids, qrels, dim: int) -> float:
    """Exact search on the re-normalised first ``dim`` coordinates, nDCG@10 by pytrec_eval."""
    def unit(x):
        x = x[:, :dim]
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    scores = unit(queries) @ unit(docs).T
    run = {qid: {doc_ids[j]: float(row[j]) for j in np.argsort(-row)[:10]} for qid, row in zip(qids, scores)}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    return float(np.mean([per_query[q]["ndcg_cut_10"] for q in qids]))


@pytest.fixture(scope="module")
def perturbed_minilm(tmp_path_factory):
    """A 'new' model: MiniLM with seeded noise on every weight, so its space drifts from the original's."""
    from embedbench.embedding.encoder import load_model

    model = load_model("default", "cpu")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.15 * param.std() * torch.randn(param.shape, generator=generator))
    folder = tmp_path_factory.mktemp("perturbed")
    model.save(str(folder))
    return model, folder


def test_compat_scores_equal_a_hand_computation(tmp_path, scifact_slice, minilm, perturbed_minilm):
    from embedbench.data.beir import load_beir

    new, folder = perturbed_minilm
    run_main("eval", "model=mrl", f"model.name_or_path={folder}", f"data.root={scifact_slice}", "eval=beir",
             "eval.compat.reference=default", "eval.cache=false", cwd=tmp_path)
    metrics = json.loads(results_files(tmp_path)[0].read_text())["metrics"]
    data = load_beir("scifact", scifact_slice, "test")
    qids, doc_ids = list(data.queries), list(data.corpus)
    queries, docs = [data.queries[q] for q in qids], [data.doc_text(d) for d in doc_ids]
    new_q, old_q, old_d = new.encode(queries), minilm.encode(queries), minilm.encode(docs)
    for dim, view in ((384, ""), (64, "/d64")):
        compat = _ndcg10(new_q, old_d, qids, doc_ids, data.qrels, dim)
        kept = _ndcg10(old_q, old_d, qids, doc_ids, data.qrels, dim)
        suffix = f"{view}_" if view else "/"
        assert metrics[f"scifact/ndcg_at_10{suffix}compat"] == pytest.approx(compat, abs=1e-4)
        assert metrics[f"scifact/ndcg_at_10{suffix}reference"] == pytest.approx(kept, abs=1e-4)
        assert metrics[f"scifact/compatible{view}"] == float(compat > kept)
    # the perturbation moved the space: new queries find the reference's documents worse than its own queries
    assert metrics["scifact/ndcg_at_10/compat"] < metrics["scifact/ndcg_at_10/reference"] - 0.01
    assert metrics["scifact/compatible"] == 0.0


def test_compat_reference_of_another_shape_stops_with_one_line(tmp_path, scifact_slice, tiny_model_path):
    proc = run_main("eval", f"model.name_or_path={tiny_model_path}", f"data.root={scifact_slice}", "eval=beir",
                    "eval.compat.reference=default", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "eval.compat.reference=default: 6 layers x 384 dims" in proc.stderr.strip().splitlines()[-1]
    assert not results_files(tmp_path)


def test_compat_reference_that_does_not_exist_stops_before_the_run(tmp_path, scifact_slice):
    proc = run_main("eval", f"data.root={scifact_slice}", "eval=beir", "eval.compat.reference=./no/such/model",
                    cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "eval.compat.reference=./no/such/model: no such folder" in proc.stderr
    assert not (tmp_path / "outputs").exists()
