"""Retrieval scores: by hand on tiny examples, equal to mteb's on a real slice, one metric set per view
and index variant."""
import math
import random

import pytest

from embedbench import mteb_reference
from embedbench.config import IndexConfig, ViewsConfig
from embedbench.data.beir import BeirDataset, load_beir, subsample, write_beir
from embedbench.embedding.views import build_views
from embedbench.errors import EmbedbenchError
from embedbench.plots import index_pareto
from embedbench.tasks.retrieval import RetrievalTask, retrieval_metrics
from tests.helpers import SCIFACT, needs_data, scored

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


@needs_data
def test_retrieval_equals_mteb_on_scifact_slice_with_graded_judgements(minilm, encoder):
    """SciFact's judgements made graded as most BEIR sets' are: grades 1-3, documents judged 0 (TREC-COVID's
    pools) and a negative grade (Touche's)."""
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 25, 150, seed=7)
    rng, docs = random.Random(0), sorted(ds.corpus)
    for judged in ds.qrels.values():
        judged.update({doc: rng.choice([1, 2, 3]) for doc in judged})
        judged.update({doc: 0 for doc in rng.sample(docs, 3) if doc not in judged})
    ds.qrels[min(ds.qrels)][next(doc for doc in docs if doc not in ds.qrels[min(ds.qrels)])] = -1
    reference = mteb_reference.scores(minilm, mteb_reference.retrieval_task(ds))
    metrics = ["ndcg_at_10", "recall_at_100", "mrr_at_10", "map_at_100", "precision_at_5", "recall_at_10"]
    ours = RetrievalTask("scifact", ds, metrics).evaluate(scored(encoder))
    for metric in metrics:
        assert ours[f"scifact/{metric}"] == pytest.approx(reference[metric], abs=5e-5), metric


@needs_data
def test_judgements_outside_the_set_are_scored_as_mteb_scores_them(minilm, encoder, embeddings, tmp_path):
    """BEIR's own sets judge a few documents missing from their corpus (ArguAna) or queries missing from their
    queries: mteb, given the same folder's contents, is the reference."""
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 20, 120, seed=3)
    first, second = sorted(ds.qrels)[:2]
    ds.qrels[first]["missing-document"] = 1  # halves what the first query can reach
    ds.qrels["missing-query"] = {next(iter(ds.qrels[second])): 1}
    reloaded = load_beir("scifact", write_beir(tmp_path / "scifact", ds), "test")
    assert "missing-document" in reloaded.qrels[first] and "missing-query" not in reloaded.qrels
    reference = mteb_reference.scores(minilm, mteb_reference.retrieval_task(ds))
    metrics = ["ndcg_at_10", "recall_at_100", "mrr_at_10", "map_at_100"]
    ours = RetrievalTask("scifact", reloaded, metrics).evaluate(scored(encoder, cache=embeddings))
    for metric in metrics:
        assert ours[f"scifact/{metric}"] == pytest.approx(reference[metric], abs=5e-5), metric
    clean = subsample(load_beir("scifact", SCIFACT, "test"), 20, 120, seed=3)  # the same texts, read back
    unjudged = RetrievalTask("scifact", clean, metrics).evaluate(scored(encoder, cache=embeddings))
    assert unjudged["scifact/recall_at_100"] > ours["scifact/recall_at_100"]  # the unreachable document counts


def test_ignore_identical_ids_drops_the_query_itself(encoder):
    corpus = {"a": {"title": "", "text": "the cat sat on the mat"}, "b": {"title": "", "text": "a cat on a mat"},
              "c": {"title": "", "text": "stock markets fell sharply"}}
    ds = BeirDataset("dup", corpus, {"a": "the cat sat on the mat"}, {"a": {"b": 1}})
    model = scored(encoder)
    kept = RetrievalTask("dup", ds, ["mrr_at_10"]).evaluate(model)
    dropped = RetrievalTask("dup", ds, ["mrr_at_10"], ignore_identical_ids=True).evaluate(model)
    assert (kept["dup/mrr_at_10"], dropped["dup/mrr_at_10"]) == (0.5, 1.0)


def test_every_view_and_index_variant_gets_its_metrics(encoder, tmp_path):
    corpus = {f"d{i}": {"title": "", "text": t} for i, t in enumerate(
        ["cats purr", "dogs bark", "stocks fell", "rain tomorrow", "a kitten sleeps", "bond yields rose"] * 3)}
    ds = BeirDataset("toy", corpus, {"q1": "sleepy cat", "q2": "market news"}, {"q1": {"d4": 1}, "q2": {"d2": 1}})
    views = build_views(ViewsConfig(dims=[384, 64]), encoder.n_layers, encoder.hidden_size)
    specs = (IndexConfig(name="binary", factory="BFlat", binary=True),
             IndexConfig(name="funnel", funnel_dim=64, shortlist=5))
    metrics = RetrievalTask("toy", ds, ["ndcg_at_10"], specs).evaluate(scored(encoder, views))
    for name in ("toy/ndcg_at_10", "toy/ndcg_at_10/binary", "toy/ndcg_at_10/d64_binary", "toy/ndcg_at_10/funnel",
                 "toy/recall_vs_exact_at_10/d64_binary", "toy/bytes_per_vec/binary", "toy/flops_per_query/funnel"):
        assert name in metrics, name
    assert "toy/ndcg_at_10/d64_funnel" not in metrics  # a 64-dim funnel cannot shortlist a 64-dim view
    assert "toy/recall_vs_exact_at_10" not in metrics  # exact search is the reference, not a variant
    assert metrics["toy/bytes_per_vec/binary"] == 48 and metrics["toy/bytes_per_vec/d64_binary"] == 8
    figure = index_pareto(metrics, views, "toy", "ndcg_at_10", ["binary", "funnel"], tmp_path / "pareto.png")
    assert figure.stat().st_size > 10_000


@needs_data
def test_each_views_ranking_is_written_as_a_trec_run_that_scores_the_same(encoder, tmp_path):
    from embedbench.tasks.retrieval import writing_runs

    ds = subsample(load_beir("scifact", SCIFACT, "test"), 15, 150, seed=2)
    task = RetrievalTask("scifact", ds, ["ndcg_at_10", "recall_at_100", "mrr_at_10"])
    ours = writing_runs(task, tmp_path / "runs").evaluate(scored(encoder, encoder.views(ViewsConfig(dims=[384, 64]))))
    assert task.runs is None  # the task itself is left as it was: a baseline scored with it writes nothing
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["scifact.d64.trec", "scifact.trec"]
    for suffix, name in (("", "scifact.trec"), ("/d64", "scifact.d64.trec")):
        run, ranks = {}, {}
        for line in (tmp_path / "runs" / name).read_text().splitlines():
            qid, q0, doc_id, rank, score, tag = line.split()
            assert (q0, tag) == ("Q0", f"embedbench{suffix}")
            run.setdefault(qid, {})[doc_id] = float(score)
            ranks.setdefault(qid, []).append((int(rank), float(score)))
        assert all([r for r, _ in rows] == list(range(1, len(rows) + 1)) and
                   [s for _, s in rows] == sorted((s for _, s in rows), reverse=True) for rows in ranks.values())
        assert len(run) == 15 and all(len(docs) == 100 for docs in run.values())
        again = retrieval_metrics(ds.qrels, run, ["ndcg_at_10", "recall_at_100", "mrr_at_10"])
        assert {f"scifact/{m}{suffix}": v for m, v in again.items()} == {
            key: ours[key] for key in (f"scifact/{m}{suffix}" for m in again)}
