"""Retrieval training recipes: mining, teacher scores, list-wise losses, TAS-B batches, self-supervised pairs."""
import json
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from embedbench.data.beir import load_beir
from embedbench.errors import EmbedbenchError
from embedbench.losses.listwise import KLDistill, MarginMSE, ScoreMSE, Wasserstein, gaussian_w2

ENCODE = OmegaConf.create({"precision": "fp32", "batch_size": 32})


def _mining_cfg(store, **changes):
    return OmegaConf.create({"model": "default", "count": 2, "ranks": [1, 20], "margin": 0.95, "shard_docs": 50,
                             "store": str(store), **changes})


@pytest.fixture(scope="module")
def train_split(scifact_slice):
    ds = load_beir("scifact", scifact_slice, "train")
    pairs = [(q, d) for q, docs in ds.qrels.items() for d in docs][:12]
    return ds, pairs


def test_second_mining_reads_the_stored_set_without_encoding(tmp_path, train_split):
    from embedbench.data.mining import mine_negatives

    ds, pairs = train_split
    first = mine_negatives(ds, pairs, _mining_cfg(tmp_path), ENCODE, None, seed=3, device="cpu")
    assert first.encoded == len({q for q, _ in pairs}) + len(ds.corpus)  # corpus searched in 50-doc shards
    second = mine_negatives(ds, pairs, _mining_cfg(tmp_path), ENCODE, None, seed=3, device="cpu")
    assert second.encoded == 0 and second.path == first.path and second.rows == first.rows
    for row, (q, d) in zip(first.rows, pairs):
        assert (row["query"], row["positive"]) == (q, d) and len(row["negatives"]) == 2
        assert not set(row["negatives"]) & {doc for doc, g in ds.qrels[q].items() if g > 0}  # no judged positive
    other = mine_negatives(ds, pairs, _mining_cfg(tmp_path, count=1), ENCODE, None, seed=3, device="cpu")
    assert other.path != first.path and other.encoded > 0  # other settings: another set


def test_mined_negatives_come_from_the_rank_band_under_the_margin(tmp_path, train_split, encoder):
    """Recomputed directly: every mined negative (no random fill-up needed here) ranks in the band for its
    query and scores under margin x the positive."""
    from embedbench.data.mining import mine_negatives

    ds, pairs = train_split
    settings = {"margin": 1.0, "ranks": [2, 12]}
    mined = mine_negatives(ds, pairs, _mining_cfg(tmp_path / "a", shard_docs=10, **settings), ENCODE, None,
                           seed=0, device="cpu")
    whole = mine_negatives(ds, pairs, _mining_cfg(tmp_path / "b", shard_docs=10_000, **settings), ENCODE, None,
                           seed=0, device="cpu")
    assert mined.rows == whole.rows  # 10-doc shards merged = the corpus searched at once
    doc_ids = list(ds.corpus)
    docs = F.normalize(encoder.encode([ds.doc_text(d) for d in doc_ids], [6], 32)[6], dim=-1)
    for row in mined.rows:
        q = F.normalize(encoder.encode([ds.queries[row["query"]]], [6], 32)[6], dim=-1)[0]
        scores = docs @ q
        order = [doc_ids[i] for i in torch.argsort(scores, descending=True)]
        pos = scores[doc_ids.index(row["positive"])]
        for neg in row["negatives"]:
            assert 2 <= order.index(neg) < 12 and scores[doc_ids.index(neg)] < pos


def test_short_bands_fill_up_with_distinct_unjudged_random_documents(tmp_path, train_split, caplog):
    from embedbench.data.mining import mine_negatives, random_documents

    ds, pairs = train_split
    # margin 0: a negative must score below 0, which hardly any document does, so nearly every pair fills up
    mined = mine_negatives(ds, pairs, _mining_cfg(tmp_path, margin=0.0, count=4), ENCODE, None, seed=0, device="cpu")
    assert "filled with random documents" in caplog.text
    for row in mined.rows:
        judged = {doc for doc, grade in ds.qrels[row["query"]].items() if grade > 0}
        assert len(set(row["negatives"])) == 4 and not set(row["negatives"]) & judged
        assert set(row["negatives"]) <= set(ds.corpus)
    assert len({tuple(row["negatives"]) for row in mined.rows}) > 1  # random, not one fixed fill

    docs = [f"d{i}" for i in range(6)]
    draws = [random_documents(random.Random(seed), docs, {"d0", "d1"}, 4, "q") for seed in range(20)]
    assert all(sorted(draw) == ["d2", "d3", "d4", "d5"] for draw in draws)  # all that is left, each once
    assert len({tuple(random_documents(random.Random(1), docs, set(), 3, "q")) for _ in range(3)}) == 1  # seeded
    with pytest.raises(EmbedbenchError, match="query q needs 5 more negatives than the corpus holds"):
        random_documents(random.Random(0), docs, {"d0", "d1"}, 5, "q")


def test_bad_rank_band_is_refused(tmp_path, train_split):
    from embedbench.data.mining import mine_negatives

    ds, pairs = train_split
    with pytest.raises(EmbedbenchError, match="data.mining: ranks"):
        mine_negatives(ds, pairs, _mining_cfg(tmp_path, ranks=[5, 6]), ENCODE, None, seed=0, device="cpu")


def test_teacher_scores_bm25_and_grades_are_stored_once(tmp_path, train_split):
    from embedbench.data.teacher import teacher_scores
    from embedbench.lexical import BM25

    ds, pairs = train_split
    rows = [{"query": q, "positive": d, "negatives": [n for n in ds.corpus if n not in ds.qrels[q]][:2]}
            for q, d in pairs[:4]]
    bm25 = OmegaConf.create({"kind": "bm25", "model": None, "scale": 0.5})
    scores = teacher_scores(ds, rows, bm25, ENCODE, None, str(tmp_path))
    doc_ids = list(ds.corpus)
    index = BM25()
    direct = index.pair_scores([ds.doc_text(d) for d in doc_ids], [ds.queries[r["query"]] for r in rows],
                               [[doc_ids.index(d) for d in [r["positive"], *r["negatives"]]] for r in rows])
    assert np.allclose(scores, 0.5 * np.array(direct))
    assert len(list(tmp_path.glob("*.json"))) == 1
    assert teacher_scores(ds, rows, bm25, ENCODE, None, str(tmp_path)) == scores  # read back
    grades = teacher_scores(ds, rows, OmegaConf.create({"kind": "grades", "model": None, "scale": 1.0}), ENCODE,
                            None, str(tmp_path))
    assert grades == [[ds.qrels[r["query"]][r["positive"]], 0, 0] for r in rows]
    with pytest.raises(EmbedbenchError, match="data.teacher.kind=oracle"):
        teacher_scores(ds, rows, OmegaConf.create({"kind": "oracle", "scale": 1.0}), ENCODE, None, str(tmp_path))


def test_model_teachers_score_each_row_in_candidate_order(tmp_path, train_split, encoder):
    """The cross-encoder teacher (a tiny random one) and the bi-encoder teacher (MiniLM's cosine) give each
    row's [positive, negatives] in order, scaled, whatever the rows' shared texts."""
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from embedbench.data.teacher import teacher_scores
    from embedbench.encoder import resolve_model_path

    ds, pairs = train_split
    others = [d for d in ds.corpus if all(d not in ds.qrels[q] for q, _ in pairs)]
    rows = [{"query": q, "positive": d, "negatives": [others[i], others[i + 1]]} for i, (q, d) in enumerate(pairs[:4])]
    texts = [[(ds.queries[r["query"]], ds.doc_text(d)) for d in [r["positive"], *r["negatives"]]] for r in rows]

    folder = tmp_path / "cross_encoder"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=1, initializer_range=0.5)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model_path("default")[0]).save_pretrained(folder)
    cross = OmegaConf.create({"kind": "cross_encoder", "model": str(folder), "scale": 2.0})
    scores = teacher_scores(ds, rows, cross, ENCODE, None, str(tmp_path / "store"), device="cpu")
    direct = CrossEncoder(str(folder), device="cpu").predict([pair for row in texts for pair in row])
    assert np.allclose(scores, 2.0 * direct.reshape(4, 3), atol=1e-5)
    assert np.diff(np.sort(direct)).min() > 1e-4  # the pairs' scores differ: a misordering would show

    bi = OmegaConf.create({"kind": "embedder", "model": "default", "scale": 1.0})
    scores = teacher_scores(ds, rows, bi, ENCODE, None, str(tmp_path / "store"), device="cpu")
    query = F.normalize(encoder.encode([t[0][0] for t in texts], [6])[6], dim=-1)
    docs = F.normalize(encoder.encode([pair[1] for row in texts for pair in row], [6])[6], dim=-1).view(4, 3, -1)
    assert np.allclose(scores, torch.einsum("qh,qch->qc", query, docs).numpy(), atol=1e-5)
    assert len(list((tmp_path / "store").glob("*.json"))) == 2  # each teacher's scores stored


def _lists():
    torch.manual_seed(0)
    columns = [F.normalize(torch.randn(4, 8), dim=-1) for _ in range(4)]  # queries + 3 candidates
    labels = torch.tensor([[3.0, 1.0, 0.0], [2.0, 2.0, 0.5], [1.0, 0.0, 0.0], [0.2, 0.9, 0.1]])
    cosines = torch.stack([(columns[0] * c).sum(-1) for c in columns[1:]], dim=1)
    return columns, labels, cosines


def test_margin_mse_matches_its_formula():
    columns, labels, cos = _lists()
    direct = ((cos[:, :1] - cos[:, 1:]) - (labels[:, :1] - labels[:, 1:])).pow(2).mean()
    assert MarginMSE()(columns, labels).item() == pytest.approx(direct.item(), rel=1e-5)


def test_kl_distill_matches_its_formula():
    columns, labels, cos = _lists()
    t, teacher_t = 0.05, 0.5
    p_teacher = F.softmax(labels / teacher_t, dim=1)
    direct = (p_teacher * (p_teacher.log() - F.log_softmax(cos / t, dim=1))).sum(1).mean() * t ** 2
    assert KLDistill(t, teacher_t)(columns, labels).item() == pytest.approx(direct.item(), rel=1e-4)


def test_score_mse_matches_its_formula():
    columns, labels, cos = _lists()
    assert ScoreMSE()(columns, labels).item() == pytest.approx((cos - labels).pow(2).mean().item(), rel=1e-5)


def test_wasserstein_matches_the_gaussian_closed_form():
    import scipy.linalg

    columns, labels, cos = _lists()
    p = F.softmax(cos / 0.05, dim=1).double().numpy()
    q = F.softmax(labels / 0.5, dim=1).double().numpy()
    cov_p, cov_q = np.cov(p.T), np.cov(q.T)
    root = scipy.linalg.sqrtm(cov_p)
    direct = (((p.mean(0) - q.mean(0)) ** 2).sum() + np.trace(cov_p) + np.trace(cov_q)
              - 2 * np.trace(scipy.linalg.sqrtm(root @ cov_q @ root)).real)
    assert Wasserstein(0.05, 0.5)(columns, labels).item() == pytest.approx(direct, rel=1e-4, abs=1e-7)
    same = torch.softmax(torch.randn(6, 4), -1)
    assert gaussian_w2(same, same).item() == pytest.approx(0.0, abs=1e-6)
    leaf = columns[1].clone().requires_grad_()
    Wasserstein(0.05, 0.5)([columns[0], leaf, *columns[2:]], labels).backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0  # singular covariances: finite gradient


def test_tas_balanced_batches_come_from_one_cluster_and_spread_over_margin_bins():
    from datasets import Dataset

    from embedbench.data.sampler import TasBalancedBatchSampler, margin_bins

    margins = np.random.default_rng(0).normal(size=200)
    assert set(margin_bins(margins, 200, 4)) == {0, 1, 2, 3} and set(margin_bins(None, 200, 4)) == {0}
    ids = np.arange(200)
    clusters, bins = ids % 5, (ids // 5) % 4  # 5 clusters of 40 rows, 10 in each margin bin
    sampler = TasBalancedBatchSampler(Dataset.from_dict({"anchor": [str(i) for i in ids]}), 8, False,
                                      clusters, bins, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(200))  # every row once per epoch
    assert len(batches) == len(sampler) == 25
    for batch in batches:
        assert len(set(clusters[batch])) == 1
        assert np.bincount(bins[batch], minlength=4).tolist() == [2, 2, 2, 2]  # round-robin over the bins
    sampler.set_epoch(1)
    assert list(sampler) != batches  # a new order each epoch


def test_query_clusters_follow_topics(encoder):
    from embedbench.data.sampler import query_clusters

    texts = ["insulin resistance in obese patients", "type 2 diabetes and insulin", "glucose and insulin levels",
             "galaxy formation in the early universe", "dark matter halos of galaxies", "stars forming in galaxies"]
    clusters = query_clusters(encoder.encode(texts, [6], 8)[6].numpy(), 2, seed=0)
    assert len(set(clusters[:3])) == 1 and len(set(clusters[3:])) == 1 and clusters[0] != clusters[3]


def test_mirror_masks_one_span_and_cropping_takes_contiguous_crops():
    from embedbench.data.unlabeled import masked_span, random_crop

    text = " ".join(f"w{i}" for i in range(40))
    rng = random.Random(0)
    masked = masked_span(text, rng, 5, "[MASK]").split()
    assert len(masked) == 40 and masked.count("[MASK]") == 5
    start = masked.index("[MASK]")
    assert masked[start:start + 5] == ["[MASK]"] * 5 and masked[:start] == text.split()[:start]
    for _ in range(20):
        crop = random_crop(text, rng, 0.1, 0.5)
        words = crop.split()
        assert 4 <= len(words) <= 20 and crop in text  # a contiguous run of 10-50 % of the words


def test_self_supervised_pairs_from_a_text_file(tmp_path):
    from embedbench.data.unlabeled import self_supervised_pairs

    (tmp_path / "texts.txt").write_text("\n".join(f"sentence number {i} with several more words here" for i in range(7)))
    cfg = OmegaConf.create({"name": "mine", "format": "cropping", "text_file": str(tmp_path / "texts.txt"),
                            "min_ratio": 0.3, "max_ratio": 0.6})
    pairs = self_supervised_pairs(cfg, 5, seed=0)
    assert pairs.column_names == ["anchor", "positive"] and len(pairs) == 5
    assert all(a in f"sentence number {i} with several more words here" for i, a in enumerate(pairs["anchor"]))


def test_graded_lists_reader(tmp_path):
    from embedbench.data.pairs import graded_lists

    path = tmp_path / "lists.jsonl"
    path.write_text(json.dumps({"query": "q1", "docs": ["a", "b", "c"], "grades": [2, 1, 0]}) + "\n"
                    + json.dumps({"query": "q2", "docs": ["d", "e", "f", "g"], "grades": [0, 3, 1, 0]}) + "\n")
    ds = graded_lists(OmegaConf.create({"name": "lists", "train": str(path), "list_size": 3}), None)
    assert ds.column_names == ["anchor", "candidate_1", "candidate_2", "candidate_3", "label"]
    assert ds["label"] == [[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]]
    with pytest.raises(EmbedbenchError, match=r"lists.jsonl:1: 3 docs; data.list_size=4"):
        graded_lists(OmegaConf.create({"name": "lists", "train": str(path), "list_size": 4}), None)


def test_teacher_without_mined_negatives_is_refused_before_any_work():
    from embedbench.cli import compose_config
    from embedbench.data.pairs import training_pairs

    with pytest.raises(EmbedbenchError, match="data.teacher scores a candidate list: set data.negatives=mined"):
        training_pairs(compose_config("train", ["loss=margin_mse", "data.teacher.kind=bm25"]))
    with pytest.raises(EmbedbenchError, match="data.negatives=random: expected null"):
        training_pairs(compose_config("train", ["data.negatives=random"]))
