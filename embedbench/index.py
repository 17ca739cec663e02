"""FAISS indexes: built from factory strings, moved to the GPU when faiss-gpu sees one, and timed."""
from __future__ import annotations

import time
from dataclasses import dataclass

import faiss
import numpy as np


def gpu_count() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


@dataclass
class SearchResult:
    scores: np.ndarray  # [queries, k]
    ids: np.ndarray  # [queries, k], -1 where fewer than k docs
    build_s: float
    search_s: float


def search(docs: np.ndarray, queries: np.ndarray, k: int, factory: str = "Flat") -> SearchResult:
    """Inner-product top-k of ``queries`` over ``docs`` (both float32, rows unit-norm for cosine)."""
    docs = np.ascontiguousarray(docs, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    start = time.perf_counter()
    index = faiss.index_factory(docs.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    if gpu_count():
        index = faiss.index_cpu_to_all_gpus(index)
    if not index.is_trained:
        index.train(docs)
    index.add(docs)
    built = time.perf_counter()
    scores, ids = index.search(queries, min(k, docs.shape[0]))
    return SearchResult(scores, ids, built - start, time.perf_counter() - built)
