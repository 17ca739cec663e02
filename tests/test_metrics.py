"""Retrieval and STS scores: by hand on a tiny example, and equal to mteb's on real slices."""
import math

import pytest

from conftest import DATA, SCIFACT
from embedbench.data.beir import load_beir, subsample
from embedbench.data.sts import ScoredPairs, read_sts
from embedbench.errors import EmbedbenchError
from embedbench.tasks.retrieval import RetrievalTask, retrieval_metrics
from embedbench.tasks.sts import STSTask
from embedbench.views import build_views

QRELS = {"q1": {"d1": 1, "d3": 1}, "q2": {"d2": 2}}
RUN = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.7}, "q2": {"d1": 0.9, "d2": 0.5}}


def test_hand_computed_example():
    m = retrieval_metrics(QRELS, RUN, ["ndcg_at_10", "mrr_at_10", "mrr_at_1", "recall_at_2", "map_at_100"])
    ndcg_q1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_q2 = (2 / math.log2(3)) / 2  # trec_eval gains are the grades themselves
    assert m["ndcg_at_10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2, abs=1e-9)
    assert m["mrr_at_10"] == pytest.approx(0.75)
    assert m["mrr_at_1"] == pytest.approx(0.5)
    assert m["recall_at_2"] == pytest.approx(0.75)
    assert m["map_at_100"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)


def test_mrr_breaks_ties_by_doc_id_descending_like_trec_eval():
    m = retrieval_metrics({"q": {"a": 1}}, {"q": {"a": 0.5, "b": 0.5}}, ["mrr_at_10", "mrr_at_1"])
    assert m == {"mrr_at_10": 0.5, "mrr_at_1": 0.0}


def test_unknown_metric_is_refused():
    with pytest.raises(EmbedbenchError, match="'ndcg10'"):
        retrieval_metrics(QRELS, RUN, ["ndcg10"])


def _embed(encoder, views):
    return lambda texts, desc: encoder.encode(texts, views.layers, 16, "fp32", desc)


def _mteb_task(kind, load):
    from mteb.abstasks.task_metadata import TaskMetadata

    metadata = TaskMetadata(
        name=f"Local{kind.__name__}", description="local slice", reference="https://example.org",
        type="Retrieval" if "Retrieval" in kind.__name__ else "STS", category="t2t", modalities=["text"],
        eval_splits=["test"], eval_langs=["eng-Latn"],
        main_score="ndcg_at_10" if "Retrieval" in kind.__name__ else "cosine_spearman",
        dataset={"path": "local", "revision": "local"}, date=None, domains=None, task_subtypes=None, license=None,
        annotations_creators=None, dialect=None, sample_creation=None, bibtex_citation="")
    return type(f"Local{kind.__name__}", (kind,), {"metadata": metadata, "load_data": load})()


def _mteb_scores(model, task):
    import mteb

    result = mteb.evaluate(model, task, cache=None, show_progress_bar=False)
    return result.task_results[0].scores["test"][0]


def test_retrieval_equals_mteb_on_scifact_slice(minilm, encoder):
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

    ds = subsample(load_beir("scifact", SCIFACT, "test"), 25, 250, seed=7)

    def load(self, **kwargs):
        corpus = Dataset.from_list([{"id": d, "title": v["title"], "text": v["text"]} for d, v in ds.corpus.items()])
        queries = Dataset.from_list([{"id": q, "text": t} for q, t in ds.queries.items()])
        self.dataset = {"default": {"test": RetrievalSplitData(corpus=corpus, queries=queries,
                                                               relevant_docs=ds.qrels, top_ranked=None)}}
        self.data_loaded = True

    reference = _mteb_scores(minilm, _mteb_task(AbsTaskRetrieval, load))
    views = build_views({}, encoder.n_layers, encoder.hidden_size)
    metrics = ["ndcg_at_10", "recall_at_100", "mrr_at_10", "map_at_100"]
    ours = RetrievalTask("scifact", ds, metrics).evaluate(_embed(encoder, views), views)
    for metric in metrics:
        assert ours[f"scifact/{metric}"] == pytest.approx(reference[metric], abs=5e-5), metric


def test_sts_equals_mteb_on_stsb_slice(minilm, encoder):
    from datasets import Dataset
    from mteb.abstasks.sts import AbsTaskSTS

    full = read_sts(DATA / "sts" / "stsbenchmark" / "sts-test.csv")
    pairs = ScoredPairs(full.sentences1[:300], full.sentences2[:300], full.scores[:300])

    def load(self, **kwargs):
        data = Dataset.from_dict({"sentence1": pairs.sentences1, "sentence2": pairs.sentences2, "score": pairs.scores})
        self.dataset = {"default": {"test": data}}
        self.data_loaded = True

    reference = _mteb_scores(minilm, _mteb_task(AbsTaskSTS, load))
    views = build_views({}, encoder.n_layers, encoder.hidden_size)
    ours = STSTask("stsb", pairs).evaluate(_embed(encoder, views), views)
    assert ours["stsb/spearman"] == pytest.approx(reference["cosine_spearman"], abs=1e-4)
