"""FAISS indexes from factory strings (the ``index=`` zoo), timed and sized; moved to the GPU when
faiss-gpu sees one and the index type has a GPU version.

Beyond plain factory strings, two kinds need more than FAISS gives:
- binary (sign) codes searched in Hamming space, optionally with the shortlist rescored by the
  float query against the unpacked bits, as sentence-transformers' ``semantic_search_faiss`` does;
- funnel retrieval (MRL's adaptive retrieval): shortlist on a short prefix (exactly, or through any
  factory string such as IVF), rerank at full width.
"""
from __future__ import annotations

import math
import time

import faiss
import numpy as np
from sentence_transformers.util import quantize_embeddings

from embedbench.config import IndexConfig
from embedbench.embedding.views import COSINE
from embedbench.errors import EmbedbenchError
from embedbench.retrieval.base import SearchResult


def gpu_count() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def factory_for(spec: IndexConfig, dim: int, n_docs: int) -> str:
    """The spec's factory string with {dim}, {nlist}, {m} and {nbits} filled in for this view and corpus."""
    # FAISS wants >= 39 training points per centroid: IVF gets ~4 sqrt(n) lists within that,
    # PQ 8-bit codes (256 centroids) from 9,984 docs up and 4-bit codes below
    nlist = max(1, min(int(4 * math.sqrt(n_docs)), n_docs // 39))
    nbits = 8 if n_docs >= 256 * 39 else 4
    return spec.factory.format(dim=dim, nlist=nlist, m=max(1, dim // spec.m_dims), nbits=nbits)


EXACT = IndexConfig(name="flat")


def search(docs: np.ndarray, queries: np.ndarray, k: int, spec: IndexConfig = EXACT,
           similarity: str = COSINE) -> SearchResult:
    """Top-k of ``queries`` over ``docs`` (float32; unit-norm rows under cosine) by inner product, through
    ``spec``; ``similarity`` is the views' own, which a funnel's shortlist stage scores its prefix by."""
    docs = np.ascontiguousarray(docs, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = min(k, docs.shape[0])
    if spec.funnel_dim:
        return _funnel(docs, queries, k, spec, similarity)
    if spec.binary:
        return _binary(docs, queries, k, spec)
    start = time.perf_counter()
    factory = factory_for(spec, docs.shape[1], docs.shape[0])
    index = _index(factory, docs.shape[1], spec)
    if gpu_count():
        index = _to_gpu(index)
    if not index.is_trained:
        index.train(_training_rows(docs, spec.train_sample))
    index.add(docs)
    if spec.params:
        space = faiss.GpuParameterSpace() if gpu_count() and _on_gpu(index) else faiss.ParameterSpace()
        space.set_index_parameters(index, spec.params)
    built = time.perf_counter()
    scores, ids = index.search(queries, k)
    searched = time.perf_counter()
    bytes_per_vec = _bytes_per_vec(index, docs.shape[0])
    flops = docs.shape[0] * docs.shape[1] if factory == "Flat" else None
    return SearchResult(scores, ids, built - start, searched - built, bytes_per_vec, flops)


def _index(factory: str, dim: int, spec: IndexConfig):
    try:
        return faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        raise EmbedbenchError(f"index.{spec.name}.factory={factory!r}: FAISS refuses it ({_first_line(err)})"
                              ) from None


def _training_rows(docs: np.ndarray, sample: int) -> np.ndarray:
    if not sample or sample >= len(docs):
        return docs
    return docs[np.sort(np.random.default_rng(0).choice(len(docs), sample, replace=False))]


def _binary(docs, queries, k, spec: IndexConfig) -> SearchResult:
    start = time.perf_counter()
    bits = quantize_embeddings(docs, precision="ubinary")
    index = faiss.index_binary_factory(bits.shape[1] * 8, spec.factory)
    index.add(bits)
    built = time.perf_counter()
    fetch = min(k * spec.rescore, docs.shape[0]) if spec.rescore else k
    distances, ids = index.search(quantize_embeddings(queries, precision="ubinary"), fetch)
    if not spec.rescore:
        scores = -distances.astype(np.float32)  # fewer differing bits = more similar
    elif spec.rescore_float:
        scores, ids = _rerank(queries, ids, lambda rows: docs[rows], k)
    else:
        # float query . unpacked {0,1} bits ranks as query . sign vector does (they differ by a per-query constant)
        scores, ids = _rerank(queries, ids, lambda rows: np.unpackbits(bits[rows], axis=-1)[..., : docs.shape[1]]
                              .astype(np.float32), k)
    searched = time.perf_counter()
    return SearchResult(scores, ids, built - start, searched - built, index.code_size)


def _funnel(docs, queries, k, spec: IndexConfig, similarity: str) -> SearchResult:
    """``spec.factory`` (exact by default, or IVF...) on the ``funnel_dim`` prefix (renormalised under cosine,
    as a cut view is) fetches a
    shortlist that FAISS's refine step rescores at full width, in C++: gathering the shortlist's vectors
    in numpy costs more than the arithmetic the prefix saves."""
    start = time.perf_counter()
    small = min(spec.funnel_dim, docs.shape[1])
    factory = factory_for(spec, small, docs.shape[0])
    first = _index(factory, small, spec)
    prefix = faiss.IndexPreTransform(first)
    if similarity == COSINE:
        prefix.prepend_transform(faiss.NormalizationTransform(small))
    prefix.prepend_transform(faiss.RemapDimensionsTransform(docs.shape[1], small,
                                                            faiss.swig_ptr(np.arange(small, dtype=np.int32))))
    index = faiss.IndexRefineFlat(prefix)
    if not index.is_trained:
        index.train(_training_rows(docs, spec.train_sample))
    index.add(docs)
    if spec.params:
        faiss.ParameterSpace().set_index_parameters(first, spec.params)
    shortlist = max(spec.shortlist, k)
    index.k_factor = shortlist / k
    built = time.perf_counter()
    scores, ids = index.search(queries, k)
    searched = time.perf_counter()
    flops = docs.shape[0] * small + shortlist * docs.shape[1] if factory == "Flat" else None
    return SearchResult(scores, ids, built - start, searched - built, _bytes_per_vec(index, docs.shape[0]), flops)


def _rerank(queries, ids, vectors, k: int, block: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Each query's k best candidates (``ids``, -1 = none) by query . ``vectors(rows)``, in query
    blocks so the gathered candidate vectors stay small."""
    kept_scores, kept_ids = [], []
    for start in range(0, len(queries), block):
        cand = ids[start:start + block]
        scores = np.einsum("qd,qkd->qk", queries[start:start + block], vectors(np.maximum(cand, 0)))
        scores[cand < 0] = -np.inf
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        kept_scores.append(np.take_along_axis(scores, order, 1))
        kept_ids.append(np.take_along_axis(cand, order, 1))
    return np.concatenate(kept_scores), np.concatenate(kept_ids)


def _to_gpu(index):
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except RuntimeError:  # no GPU version of this index type (e.g. HNSW): search it on the CPU
        return index


def _on_gpu(index) -> bool:
    return "Gpu" in type(index).__name__


def _bytes_per_vec(index, n: int) -> float:
    """Serialised index size per document: codes plus whatever the structure adds (graph links, lists)."""
    cpu = faiss.index_gpu_to_cpu(index) if _on_gpu(index) else index
    return faiss.serialize_index(cpu).size / n


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[-1][:200]
