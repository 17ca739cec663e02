"""Reduced corpora: the pool (judged + each reference's top k), rankings restricted to it, the agreement
figures, and the command end to end on a real SciFact slice."""
import json

import pytest

from embedbench.data.beir import BeirDataset, load_beir
from embedbench.jobs.reduce import ndcg_at_10, pool, reduce
from tests.helpers import run_main

CORPUS = {f"d{i}": {"title": "", "text": f"doc {i}"} for i in range(30)}
QRELS = {"q1": {"d0": 1, "d29": 0}, "q2": {"d5": 2}}
DS = BeirDataset("toy", CORPUS, {"q1": "a", "q2": "b"}, QRELS)
ORDER = [f"d{i}" for i in range(30)]
SYSTEMS = {  # rankings of the full corpus, best first
    "ref": {"q1": ORDER, "q2": ORDER[5:] + ORDER[:5]},
    "other": {"q1": ORDER[::-1], "q2": ORDER[10:] + ORDER[:10]},
    "third": {"q1": ORDER[1:] + ORDER[:1], "q2": ORDER[3:] + ORDER[:3]},
}


def test_the_pool_is_every_judged_document_and_each_references_top_k():
    assert pool(DS, [SYSTEMS["ref"]], 2) == {"d0", "d29", "d5", "d1", "d6"}
    assert pool(DS, [SYSTEMS["ref"], SYSTEMS["other"]], 1) == {"d0", "d29", "d5", "d10"}


def test_a_ranking_on_the_pool_is_the_full_ranking_restricted_to_it():
    kept = pool(DS, [SYSTEMS["ref"]], 2)
    assert ndcg_at_10(QRELS, SYSTEMS["other"], kept) == ndcg_at_10(QRELS, {
        qid: [d for d in docs if d in kept] for qid, docs in SYSTEMS["other"].items()})
    assert ndcg_at_10(QRELS, SYSTEMS["other"], kept) > ndcg_at_10(QRELS, SYSTEMS["other"])  # fewer distractors


def test_the_whole_corpus_as_pool_agrees_perfectly():
    lengths = {d: 1 + i for i, d in enumerate(CORPUS)}
    [small, whole] = reduce(DS, SYSTEMS, ["ref"], [1, 30], lengths)
    assert whole.fraction == 1 and whole.token_share == 1 and whole.tau == pytest.approx(1)
    assert whole.reduced == whole.full
    assert small.kept == {"d0", "d29", "d5"}
    assert small.token_share == pytest.approx((1 + 30 + 6) / sum(lengths.values()))
    with pytest.raises(ValueError, match="reference 'bm25' is not among the systems"):
        reduce(DS, SYSTEMS, ["bm25"], [1], lengths)


@pytest.mark.slow
def test_reduce_writes_folders_a_plot_and_the_table_on_a_scifact_slice(tmp_path, scifact_slice, tiny_model_path):
    proc = run_main("reduce", f"data.root={scifact_slice}", f"model.name_or_path={tiny_model_path}",
                    "--k", "1", "10", "1000", "--out", str(tmp_path / "reduced"), cwd=tmp_path)
    full = load_beir("scifact", scifact_slice, "test")
    lines = proc.stdout.splitlines()
    [whole] = [line.split() for line in lines if line.strip().startswith("1000 ")]
    assert whole[-3:-2] == ["1.000"] and whole[-2:] == ["1.000", "1.000"]  # all kept: tau and rho 1
    for k in (1, 10, 1000):
        reduced = load_beir("scifact", tmp_path / "reduced" / f"scifact-k{k}", "test")
        assert reduced.qrels == full.qrels and set(reduced.corpus) <= set(full.corpus)
    assert (tmp_path / "reduced" / "scifact-reduction.png").stat().st_size > 0
    summary = (tmp_path / "reduced" / "scifact-reduction.md").read_text()
    rows = [line.split() for line in summary.splitlines() if line.startswith(("minilm", "bm25"))]
    scores = {row[0]: row[1:] for row in rows}
    assert set(scores) == {"minilm", "minilm/l1_d32", "bm25"} and all(len(row) == 4 for row in scores.values())
    assert "smallest k with Kendall tau >= 0.9" in proc.stdout
    assert json.dumps(proc.stdout)  # printable as it is
