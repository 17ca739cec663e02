"""An encoder's views as a retriever: texts encoded once, every view searched exactly and through each
index of ``index=``; with a reference model (``eval.compat``), each view also searches the reference's
documents with this model's queries (``_compat``) and with the reference's own (``_reference``)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from embedbench.config import IndexConfig
from embedbench.embedding.views import ViewSet, cut
from embedbench.retrieval.base import SearchResult
from embedbench.retrieval.index import search

RECALL_VS_EXACT = 10  # an index's recall@10 against exact search of the same view
COMPAT, REFERENCE = "compat", "reference"  # new queries x reference documents; reference x reference


class DenseRetriever:
    def __init__(self, embed: Callable, views: ViewSet, indexes: Sequence[IndexConfig] = (),
                 reference: Callable | None = None):
        self.embed, self.views, self.indexes, self.reference = embed, views, tuple(indexes), reference

    def retrieve(self, queries: list[str], docs: list[str], k: int, desc: str) -> dict[str, SearchResult]:
        pooled = self.embed(queries + docs, desc)
        kept = self.reference(queries + docs, f"{desc} (reference model)") if self.reference else None
        depth = max(k, RECALL_VS_EXACT)
        results = {}
        for view in self.views.views:
            doc_emb, query_emb = split(pooled, view, len(queries))
            exact = search(doc_emb, query_emb, depth)
            results[self.views.name(view)] = exact
            if kept is not None:
                kept_docs, kept_queries = split(kept, view, len(queries))
                results[self.views.name(view, COMPAT)] = search(kept_docs, query_emb, depth)
                results[self.views.name(view, REFERENCE)] = search(kept_docs, kept_queries, depth)
            for spec in self.indexes:
                if spec.funnel_dim and spec.funnel_dim >= view.dim:
                    continue  # a funnel only shortlists at a dim below the view's
                found = search(doc_emb, query_emb, depth, spec)
                found.recall_vs_exact = overlap(found.ids, exact.ids)
                results[self.views.name(view, spec.name)] = found
        return results


def split(pooled: dict, view, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(documents, queries) of ``view`` from the pooled layers of queries + documents."""
    emb = cut(pooled[view.layer], view.dim).numpy()
    return emb[n_queries:], emb[:n_queries]


def overlap(found: np.ndarray, exact: np.ndarray, k: int = RECALL_VS_EXACT) -> float:
    """Mean fraction of the exact top-k that the index also returns in its top-k."""
    return float(np.mean([len(set(f[:k]) & set(e[:k]) - {-1}) / k for f, e in zip(found, exact)]))
