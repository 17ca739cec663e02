"""Retrieval, reranking and STS scores: by hand on tiny examples, and equal to mteb's on real slices."""
import math
import random

import pytest

from conftest import DATA, SCIFACT, embed_with, mteb_scores, mteb_task
from embedbench.data.beir import BeirDataset, load_beir, load_candidates, subsample
from embedbench.data.sts import ScoredPairs, read_sts
from embedbench.errors import EmbedbenchError
from embedbench.tasks.reranking import RerankingTask
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


def mteb_retrieval_task(ds, task_type: str, main_score: str, top_ranked=None):
    """A real mteb retrieval task over a BEIR dataset held in memory (with candidates: reranking)."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

    def load(self, **kwargs):
        corpus = Dataset.from_list([{"id": d, "title": v["title"], "text": v["text"]} for d, v in ds.corpus.items()])
        queries = Dataset.from_list([{"id": q, "text": t} for q, t in ds.queries.items()])
        self.dataset = {"default": {"test": RetrievalSplitData(corpus=corpus, queries=queries,
                                                               relevant_docs=ds.qrels, top_ranked=top_ranked)}}
        self.data_loaded = True

    return mteb_task(AbsTaskRetrieval, task_type, main_score, load)


def test_retrieval_equals_mteb_on_scifact_slice(minilm, encoder):
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 25, 250, seed=7)
    reference = mteb_scores(minilm, mteb_retrieval_task(ds, "Retrieval", "ndcg_at_10"))
    views = build_views({}, encoder.n_layers, encoder.hidden_size)
    metrics = ["ndcg_at_10", "recall_at_100", "mrr_at_10", "map_at_100"]
    ours = RetrievalTask("scifact", ds, metrics).evaluate(embed_with(encoder, views), views)
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

    reference = mteb_scores(minilm, mteb_task(AbsTaskSTS, "STS", "cosine_spearman", load))
    views = build_views({}, encoder.n_layers, encoder.hidden_size)
    ours = STSTask("stsb", pairs).evaluate(embed_with(encoder, views), views)
    assert ours["stsb/spearman"] == pytest.approx(reference["cosine_spearman"], abs=1e-4)


def _candidates(ds, per_query: int, seed: int) -> dict[str, list[str]]:
    """Each query's judged docs hidden among random others, in shuffled order."""
    rng = random.Random(seed)
    docs = sorted(ds.corpus)
    out = {}
    for qid, judged in ds.qrels.items():
        shortlist = list(judged) + rng.sample([d for d in docs if d not in judged], per_query)
        rng.shuffle(shortlist)
        out[qid] = shortlist
    return out


def test_reranking_equals_mteb_on_scifact_candidates(minilm, encoder):
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 20, 200, seed=3)
    candidates = _candidates(ds, 12, seed=3)
    reference = mteb_scores(minilm, mteb_retrieval_task(ds, "Reranking", "map_at_1000", candidates))
    views = build_views({}, encoder.n_layers, encoder.hidden_size)
    ours = RerankingTask("rerank", ds, candidates, ["map_at_1000", "mrr_at_10"]).evaluate(embed_with(encoder, views),
                                                                                           views)
    assert ours["rerank/map_at_1000"] == pytest.approx(reference["map_at_1000"], abs=5e-5)
    assert ours["rerank/mrr_at_10"] == pytest.approx(reference["mrr_at_10"], abs=5e-5)


def test_candidates_file_errors_name_the_line(tmp_path):
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 2, 20, seed=1)
    q1, q2 = sorted(ds.qrels)
    path = tmp_path / "candidates.tsv"
    path.write_text(f"query-id\tcorpus-id\n{q1}\t{next(iter(ds.corpus))}\n{q2}\tnot-a-doc\n")
    with pytest.raises(EmbedbenchError, match=r"candidates\.tsv:3: document 'not-a-doc' is not in corpus"):
        load_candidates(path, ds)
    path.write_text(f"{q1}\t{next(iter(ds.corpus))}\n")
    with pytest.raises(EmbedbenchError, match=rf"1 judged queries have no candidates, e.g. '{q2}'"):
        load_candidates(path, ds)


def test_ignore_identical_ids_drops_the_query_itself(encoder):
    corpus = {"a": {"title": "", "text": "the cat sat on the mat"}, "b": {"title": "", "text": "a cat on a mat"},
              "c": {"title": "", "text": "stock markets fell sharply"}}
    ds = BeirDataset("dup", corpus, {"a": "the cat sat on the mat"}, {"a": {"b": 1}})
    views = build_views({}, encoder.n_layers, encoder.hidden_size)
    embed = embed_with(encoder, views)
    kept = RetrievalTask("dup", ds, ["mrr_at_10"]).evaluate(embed, views)
    dropped = RetrievalTask("dup", ds, ["mrr_at_10"], ignore_identical_ids=True).evaluate(embed, views)
    assert (kept["dup/mrr_at_10"], dropped["dup/mrr_at_10"]) == (0.5, 1.0)


def test_bm25_on_scifact_is_pyserini_flat_within_001():
    from embedbench.lexical import BM25

    task = RetrievalTask("scifact", load_beir("scifact", SCIFACT, "test"), ["ndcg_at_10", "recall_at_100"])
    scores = task.evaluate_lexical(BM25())
    assert scores["scifact/ndcg_at_10"] == pytest.approx(0.6789, abs=0.01)  # Pyserini BEIR flat index
    assert scores["scifact/bytes_per_vec"] > 0


def test_bm25_settings_change_the_ranking_and_bad_stemmer_is_refused():
    from embedbench.lexical import BM25

    docs = ["running shoes for marathon runners", "the run of the season", "cooking pasta at home"]
    stemmed = BM25().search(docs, ["runs"], 3).ids[0]
    unstemmed = BM25(stemmer=None).search(docs, ["runs"], 3)
    assert set(stemmed[:2]) == {0, 1} and (unstemmed.scores[0] == 0).all()  # "runs" matches only via stems
    with pytest.raises(EmbedbenchError, match="model.stemmer=klingon"):
        BM25(stemmer="klingon")
