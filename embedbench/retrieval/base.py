"""What every retriever returns, and the interface retrieval tasks score through."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

# what a task logs beside its quality: its time, and each retrieval view's costs, sizes and agreement with
# exact search (the fields of a SearchResult)
COSTS = ("eval_s", "index_build_s", "search_qps", "bytes_per_vec", "flops_per_query", "recall_vs_exact_at_10")


@dataclass
class SearchResult:
    scores: np.ndarray  # [queries, k]
    ids: np.ndarray  # [queries, k] row numbers into the documents, -1 where fewer than k
    build_s: float
    search_s: float
    bytes_per_vec: float
    flops_per_query: float | None = None  # multiply-adds per query, where the search is exhaustive
    recall_vs_exact: float | None = None  # an index's top-k overlap with exact search of the same view


class Retriever(Protocol):
    def retrieve(self, queries: list[str], docs: list[str], k: int, desc: str) -> dict[str, SearchResult]:
        """Each query's top ``k`` documents, for every variant the retriever searches with (a dense model: each
        view, exactly and through each index), keyed by metric-name suffix: '' for the full view, '/d64',
        '/d64_hnsw', ..."""
        ...
