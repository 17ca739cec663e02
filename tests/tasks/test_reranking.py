"""Reranking: equal to mteb's on real candidates and on samples in mteb's format; errors name the line."""
import json
import random

import pytest

from embedbench import mteb_reference
from embedbench.config import DataConfig, RerankingTaskConfig
from embedbench.data.beir import load_beir, load_candidates, load_reranking_samples, subsample
from embedbench.errors import EmbedbenchError
from embedbench.tasks import build_task
from embedbench.tasks.base import Limits
from embedbench.tasks.reranking import RerankingTask
from tests.helpers import SCIFACT, needs_data, scored

pytestmark = needs_data


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
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 20, 120, seed=3)
    candidates = _candidates(ds, 12, seed=3)
    reference = mteb_reference.scores(minilm, mteb_reference.retrieval_task(ds, candidates))
    ours = RerankingTask("rerank", ds, candidates, ["map_at_1000", "mrr_at_10"]).evaluate(scored(encoder))
    assert ours["rerank/map_at_1000"] == pytest.approx(reference["map_at_1000"], abs=5e-5)
    assert ours["rerank/mrr_at_10"] == pytest.approx(reference["mrr_at_10"], abs=5e-5)


def test_candidates_file_errors_name_the_line(tmp_path):
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 2, 20, seed=1)
    q1, q2 = sorted(ds.qrels)
    path = tmp_path / "candidates.tsv"
    path.write_text(f"query-id\tcorpus-id\n{q1}\t{next(iter(ds.corpus))}\n{q2}\tnot-a-doc\n")
    with pytest.raises(EmbedbenchError, match=r"candidates\.tsv:3: document 'not-a-doc' is not in the corpus"):
        load_candidates(path, ds)
    path.write_text(f"{q1}\t{next(iter(ds.corpus))}\n")
    with pytest.raises(EmbedbenchError, match=rf"1 judged queries have no candidates, e.g. '{q2}'"):
        load_candidates(path, ds)


def test_a_trec_run_gives_the_candidates_a_tab_separated_file_gives(tmp_path):
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 3, 30, seed=1)
    candidates = _candidates(ds, 4, seed=1)
    plain, run = tmp_path / "candidates.tsv", tmp_path / "bm25.run"
    plain.write_text("".join(f"{q}\t{d}\n" for q, docs in candidates.items() for d in docs))
    run.write_text("".join(f"{q} Q0 {d} {rank} {10.0 - rank:.2f} bm25\n" for q, docs in candidates.items()
                           for rank, d in enumerate(docs, 1)))
    assert load_candidates(run, ds) == load_candidates(plain, ds) == candidates


def test_save_runs_writes_each_views_ordering_of_the_candidates(encoder, tmp_path):
    from embedbench.config import ViewsConfig
    from embedbench.tasks.retrieval import retrieval_metrics, writing_runs

    ds = subsample(load_beir("scifact", SCIFACT, "test"), 10, 100, seed=4)
    candidates = _candidates(ds, 6, seed=4)
    task = RerankingTask("rerank", ds, candidates, ["map_at_1000", "mrr_at_10"])
    ours = writing_runs(task, tmp_path).evaluate(scored(encoder, encoder.views(ViewsConfig(dims=[384, 32]))))
    assert task.runs is None and sorted(p.name for p in tmp_path.iterdir()) == ["rerank.d32.trec", "rerank.trec"]
    for suffix, name in (("", "rerank.trec"), ("/d32", "rerank.d32.trec")):
        run = {}
        for line in (tmp_path / name).read_text().splitlines():
            qid, _, doc_id, _, score, _ = line.split()
            run.setdefault(qid, {})[doc_id] = float(score)
        assert {qid: sorted(docs) for qid, docs in run.items()} == {q: sorted(c) for q, c in candidates.items()}
        again = retrieval_metrics(ds.qrels, run, ["map_at_1000", "mrr_at_10"])
        assert again == {metric: ours[f"rerank/{metric}{suffix}"] for metric in again}


def test_mtebs_reranking_samples_score_as_mteb_converts_and_scores_them(minilm, encoder, tmp_path):
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 10, 40, seed=5)
    rng, docs = random.Random(5), sorted(ds.corpus)
    def halves(text):  # hard negatives: each half of a positive ranks near it
        words = text.split()
        return [" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2:])]

    samples = [{"query": ds.queries[qid], "positive": [ds.doc_text(d) for d in judged],
                "negative": [half for d in judged for half in halves(ds.doc_text(d))]
                + [ds.doc_text(d) for d in rng.sample([d for d in docs if d not in judged], 3)]}
               for qid, judged in ds.qrels.items()]  # random negatives from one pool: texts recur across queries
    samples[3]["negative"] = []  # left out, by mteb too
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps(sample) + "\n" for sample in samples))
    task = build_task("rr", RerankingTaskConfig(name="rr", path=str(path)), DataConfig(name="nli", format="pairs"),
                      Limits(), ())
    assert len(task.dataset.queries) == 9 and len(task.dataset.corpus) == sum(
        len(s["positive"]) + len(s["negative"]) for s in samples if s["negative"])
    from datasets import Dataset, DatasetDict

    DatasetDict({"test": Dataset.from_list(samples)}).save_to_disk(tmp_path / "hub")  # the Hub's rows, offline
    from_hub = build_task("rr", RerankingTaskConfig(name="rr", hub=str(tmp_path / "hub")),
                          DataConfig(name="nli", format="pairs"), Limits(), ())
    assert (from_hub.dataset, from_hub.candidates) == (task.dataset, task.candidates)
    flag = tmp_path / "flag.jsonl"  # FlagEmbedding's keys for the same samples
    flag.write_text("".join(json.dumps({"query": s["query"], "pos": s["positive"], "neg": s["negative"]}) + "\n"
                            for s in samples))
    from_flag = build_task("rr", RerankingTaskConfig(name="rr", path=str(flag)),
                           DataConfig(name="nli", format="pairs"), Limits(), ())
    assert (from_flag.dataset, from_flag.candidates) == (task.dataset, task.candidates)
    reference = mteb_reference.scores(minilm, mteb_reference.reranking_samples_task(samples))
    ours = task.evaluate(scored(encoder))
    assert ours["rr/map_at_1000"] < 0.9  # the halves outrank some positives
    assert ours["rr/map_at_1000"] == pytest.approx(reference["map_at_1000"], abs=5e-5)
    assert ours["rr/mrr_at_10"] == pytest.approx(reference["mrr_at_10"], abs=5e-5)

    path.write_text(json.dumps({"query": "q", "positive": "p", "negative": ["n"]}) + "\n")
    with pytest.raises(EmbedbenchError, match=r"samples\.jsonl:1: positive and negative are lists of strings"):
        load_reranking_samples("rr", path, "test")
    path.write_text(json.dumps({"query": "q", "positive": ["p"], "negative": []}) + "\n")
    with pytest.raises(EmbedbenchError, match=r"samples\.jsonl: no sample has both a positive and a negative"):
        load_reranking_samples("rr", path, "test")
    for spec in (RerankingTaskConfig(name="rr"), RerankingTaskConfig(name="rr", path=str(path), candidates="c.tsv")):
        with pytest.raises(EmbedbenchError, match=r"eval\.tasks\.rr: give candidates .* or path .*, one of them"):
            build_task("rr", spec, DataConfig(name="nli", format="pairs"), Limits(), ())
