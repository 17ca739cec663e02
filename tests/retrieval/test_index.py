"""The index zoo against direct numpy computations on small random collections (real FAISS)."""
import numpy as np
import pytest

from embedbench.config import IndexConfig
from embedbench.errors import EmbedbenchError
from embedbench.retrieval.dense import overlap
from embedbench.retrieval.index import search


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def collection():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(20, 64))
    docs = unit(centers[rng.integers(0, 20, 3000)] + 0.6 * rng.normal(size=(3000, 64)))
    queries = unit(docs[rng.integers(0, 3000, 50)] + 0.3 * rng.normal(size=(50, 64)))
    return docs, queries


def exact_top(docs, queries, k):
    return np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :k]


def bits(x):
    return (x > 0).astype(np.int64)


def test_flat_is_exact_with_its_flops(collection):
    docs, queries = collection
    found = search(docs, queries, 10)
    assert overlap(found.ids, exact_top(docs, queries, 10)) == 1.0
    assert found.flops_per_query == 3000 * 64 and found.bytes_per_vec == pytest.approx(256, abs=1)


def test_binary_ranks_by_hamming_distance(collection):
    docs, queries = collection
    found = search(docs, queries, 10, IndexConfig(name="binary", factory="BFlat", binary=True))
    hamming = (bits(queries)[:, None, :] != bits(docs)[None, :, :]).sum(-1)
    assert np.array_equal(-found.scores, np.sort(hamming, axis=1)[:, :10])
    assert all(np.array_equal(hamming[q, found.ids[q]], -found.scores[q]) for q in range(len(queries)))
    assert found.bytes_per_vec == 8  # 64 dims -> 8 bytes, 32x smaller than float32


def test_binary_rescore_reranks_the_hamming_shortlist(collection):
    docs, queries = collection
    k, multiplier = 5, 4
    shortlist = search(docs, queries, k * multiplier, IndexConfig(name="b", factory="BFlat", binary=True)).ids
    for rescore_float, vectors in ((False, bits(docs).astype(np.float32)), (True, docs)):
        spec = IndexConfig(name="b", factory="BFlat", binary=True, rescore=multiplier, rescore_float=rescore_float)
        found = search(docs, queries, k, spec)
        for q in range(len(queries)):
            scores = vectors[shortlist[q]] @ queries[q]
            assert set(found.ids[q]) == set(shortlist[q][np.argsort(-scores, kind="stable")[:k]])
            assert np.allclose(found.scores[q], np.sort(scores)[::-1][:k], atol=1e-5)


def test_funnel_shortlists_on_the_prefix_and_reranks_at_full_width(collection):
    docs, queries = collection
    found = search(docs, queries, 10, IndexConfig(name="funnel", funnel_dim=16, shortlist=40))
    shortlist = exact_top(unit(docs[:, :16]), unit(queries[:, :16]), 40)
    for q in range(len(queries)):
        scores = docs[shortlist[q]] @ queries[q]
        assert set(found.ids[q]) == set(shortlist[q][np.argsort(-scores)[:10]])
    assert found.flops_per_query == 3000 * 16 + 40 * 64


def test_funnel_first_stage_through_ivf_takes_its_probe_count(collection):
    """An IVF first stage on the prefix that probes every list shortlists as the exact prefix search does."""
    docs, queries = collection
    exact_first = search(docs, queries, 10, IndexConfig(name="funnel", funnel_dim=16, shortlist=40))
    spec = {"name": "funnel ivf", "funnel_dim": 16, "shortlist": 40, "factory": "IVF{nlist},Flat"}
    every_list = search(docs, queries, 10, IndexConfig(**spec, params="nprobe=76"))
    one_list = search(docs, queries, 10, IndexConfig(**spec, params="nprobe=1"))
    assert overlap(every_list.ids, exact_first.ids) == 1.0
    assert overlap(one_list.ids, exact_first.ids) < 0.9
    assert every_list.flops_per_query is None  # an IVF scan's work depends on the lists probed


def test_ivf_probe_count_is_applied(collection):
    docs, queries = collection
    exact = exact_top(docs, queries, 10)
    every_list = search(docs, queries, 10, IndexConfig(name="ivf", factory="IVF{nlist},Flat", params="nprobe=76"))
    one_list = search(docs, queries, 10, IndexConfig(name="ivf", factory="IVF{nlist},Flat", params="nprobe=1"))
    assert overlap(every_list.ids, exact) == 1.0  # 3000 docs -> min(4 sqrt(3000), 3000 // 39) = 76 lists
    assert overlap(one_list.ids, exact) < 1.0


def test_pq_codes_are_smaller_than_floats(collection):
    docs, queries = collection
    found = search(docs, queries, 10, IndexConfig(name="pq", factory="PQ{m}x{nbits}"))
    assert found.bytes_per_vec < 0.25 * search(docs, queries, 10).bytes_per_vec  # 16 sub-quantizers x 4 bits
    assert overlap(found.ids, exact_top(docs, queries, 10)) > 0.2  # chance: 10 / 3000


def test_a_factory_faiss_refuses_is_named():
    with pytest.raises(EmbedbenchError, match=r"index\.weird\.factory='Nonsense7': FAISS refuses it"):
        search(np.eye(4, dtype=np.float32), np.eye(4, dtype=np.float32), 2, IndexConfig(name="weird",
                                                                                       factory="Nonsense7"))
