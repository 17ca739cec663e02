"""Hard-negative mining: the rank band under the margin, sharded search equal to one search, random
fill-up, and a stored set read back without encoding."""
import random

import pytest
import torch
import torch.nn.functional as F

from embedbench.config import EncodeConfig, MiningConfig
from embedbench.data.beir import load_beir
from embedbench.data.mining import mine_negatives, random_documents
from embedbench.errors import EmbedbenchError

ENCODE = EncodeConfig(precision="fp32", batch_size=32)


def _mining(store, **changes) -> MiningConfig:
    return MiningConfig(**{"count": 2, "ranks": [1, 20], "margin": 0.95, "shard_docs": 50, "store": str(store),
                           **changes})


@pytest.fixture(scope="module")
def train_split(scifact_slice):
    ds = load_beir("scifact", scifact_slice, "train")
    pairs = [(q, d) for q, docs in ds.qrels.items() for d in docs][:12]
    return ds, pairs


def test_second_mining_reads_the_stored_set_without_encoding(tmp_path, train_split):
    ds, pairs = train_split
    first = mine_negatives(ds, pairs, _mining(tmp_path), ENCODE, None, seed=3, device="cpu")
    assert first.encoded == len({q for q, _ in pairs}) + len(ds.corpus)  # corpus searched in 50-doc shards
    second = mine_negatives(ds, pairs, _mining(tmp_path), ENCODE, None, seed=3, device="cpu")
    assert second.encoded == 0 and second.path == first.path and second.rows == first.rows
    for row, (q, d) in zip(first.rows, pairs):
        assert (row["query"], row["positive"]) == (q, d) and len(row["negatives"]) == 2
        assert not set(row["negatives"]) & {doc for doc, g in ds.qrels[q].items() if g > 0}  # no judged positive
    other = mine_negatives(ds, pairs, _mining(tmp_path, count=1), ENCODE, None, seed=3, device="cpu")
    assert other.path != first.path and other.encoded > 0  # other settings: another set


def test_mined_negatives_come_from_the_rank_band_under_the_margin(tmp_path, train_split, encoder):
    """Recomputed directly: every mined negative (no random fill-up needed here) ranks in the band for its
    query and scores under margin x the positive."""
    ds, pairs = train_split
    settings = {"margin": 1.0, "ranks": [2, 12]}
    mined = mine_negatives(ds, pairs, _mining(tmp_path / "a", shard_docs=10, **settings), ENCODE, None,
                           seed=0, device="cpu")
    whole = mine_negatives(ds, pairs, _mining(tmp_path / "b", shard_docs=10_000, **settings), ENCODE, None,
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
    ds, pairs = train_split
    # margin 0: a negative must score below 0, which hardly any document does, so nearly every pair fills up
    mined = mine_negatives(ds, pairs, _mining(tmp_path, margin=0.0, count=4), ENCODE, None, seed=0, device="cpu")
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


def test_bad_rank_band_is_refused():
    with pytest.raises(EmbedbenchError, match="data.mining: ranks"):
        MiningConfig(count=2, ranks=[5, 6])


def test_a_normalising_miner_that_declares_dot_product_mines_as_its_cosine_twin(tmp_path, train_split, minilm):
    """Its own output is unit length, so its inner products are cosines: the miner scores what the model
    outputs, not the pooled vectors before its Normalize module."""
    import copy

    ds, pairs = train_split
    dot = copy.deepcopy(minilm)
    dot.similarity_fn_name = "dot"
    dot.save(str(tmp_path / "dot"))
    cosine = mine_negatives(ds, pairs, _mining(tmp_path / "a"), ENCODE, None, seed=3, device="cpu")
    declared_dot = mine_negatives(ds, pairs, _mining(tmp_path / "b", model=str(tmp_path / "dot")), ENCODE, None,
                                  seed=3, device="cpu")
    assert declared_dot.rows == cosine.rows
