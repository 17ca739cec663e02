"""An encoder's views as a retriever: texts encoded once, every view searched exactly and through each
index of ``index=``; with a reference model (``eval.compat``), each view also searches the reference's
documents with this model's queries (``_compat``) and with the reference's own (``_reference``).

With ``shard_docs`` (``eval.shard_docs``) the documents are encoded and searched that many at a time, each
shard's top-k merged into one heap per view, so memory holds a shard's embeddings, not the collection's.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import faiss
import numpy as np

from embedbench.config import IndexConfig
from embedbench.embedding.views import ViewSet
from embedbench.errors import EmbedbenchError
from embedbench.retrieval.base import SearchResult
from embedbench.retrieval.index import search

RECALL_VS_EXACT = 10  # an index's recall@10 against exact search of the same view
COMPAT, REFERENCE = "compat", "reference"  # new queries x reference documents; reference x reference


class DenseRetriever:
    def __init__(self, embed: Callable, views: ViewSet, indexes: Sequence[IndexConfig] = (),
                 reference: Callable | None = None, shard_docs: int | None = None):
        self.embed, self.views, self.indexes, self.reference = embed, views, tuple(indexes), reference
        self.shard_docs = shard_docs

    def retrieve(self, queries: list[str], docs: list[str], k: int, desc: str) -> dict[str, SearchResult]:
        if self.shard_docs and len(docs) > self.shard_docs:
            return self.retrieve_by_shards(queries, docs, k, desc)
        pooled = self.embed(queries + docs, desc)
        kept = self.reference(queries + docs, f"{desc} (reference model)") if self.reference else None
        depth = max(k, RECALL_VS_EXACT)
        results = {}
        for view in self.views.views:
            doc_emb, query_emb = split(self.views, pooled, view, len(queries))
            exact = search(doc_emb, query_emb, depth)
            results[self.views.name(view)] = exact
            if kept is not None:
                kept_docs, kept_queries = split(self.views, kept, view, len(queries))
                results[self.views.name(view, COMPAT)] = search(kept_docs, query_emb, depth)
                results[self.views.name(view, REFERENCE)] = search(kept_docs, kept_queries, depth)
            for spec in self.indexes:
                if spec.funnel_dim and spec.funnel_dim >= view.dim:
                    continue  # a funnel only shortlists at a dim below the view's
                found = search(doc_emb, query_emb, depth, spec, self.views.similarity)
                found.recall_vs_exact = overlap(found.ids, exact.ids)
                results[self.views.name(view, spec.name)] = found
        return results


    def retrieve_by_shards(self, queries: list[str], docs: list[str], k: int, desc: str) -> dict[str, SearchResult]:
        """Exact search of every view (and the compatibility variants), ``shard_docs`` documents at a time."""
        if self.indexes:
            raise EmbedbenchError("eval.shard_docs: index= builds its indexes over the whole collection; sharded "
                                  "scoring searches exactly (drop index=, or eval.shard_docs)")
        depth, n = min(max(k, RECALL_VS_EXACT), len(docs)), len(queries)
        own = self.embed(queries, f"{desc}: queries")
        kept = self.reference(queries, f"{desc}: queries (reference model)") if self.reference else None
        asking = {view: self.views.scored(own, view).numpy() for view in self.views.views}
        asking_kept = {view: self.views.scored(kept, view).numpy() for view in self.views.views} if kept else {}
        merged: dict[str, ShardedResult] = {}
        for start in range(0, len(docs), self.shard_docs):
            part = docs[start:start + self.shard_docs]
            pooled = self.embed(part, f"{desc}: documents {start + 1:,}-{start + len(part):,}")
            kept_docs = self.reference(part, f"{desc}: documents (reference model)") if self.reference else None
            for view in self.views.views:
                searches = {self.views.name(view): (self.views.scored(pooled, view).numpy(), asking[view])}
                if kept_docs is not None:  # the reference's documents cut once, searched by both query sets
                    reference_docs = self.views.scored(kept_docs, view).numpy()
                    searches[self.views.name(view, COMPAT)] = (reference_docs, asking[view])
                    searches[self.views.name(view, REFERENCE)] = (reference_docs, asking_kept[view])
                for name, (documents, questions) in searches.items():
                    found = search(documents, questions, depth)
                    merged.setdefault(name, ShardedResult(n, depth)).add(found, start)
        return {name: result.finish() for name, result in merged.items()}


class ShardedResult:
    """One variant's top-k over the shards searched so far: FAISS's result heap, with the search costs summed."""

    def __init__(self, n_queries: int, k: int):
        self.heap = faiss.ResultHeap(n_queries, k, keep_max=True)  # inner products: the largest are the nearest
        self.build_s = self.search_s = 0.0
        self.flops, self.bytes_per_vec = 0.0, 0.0

    def add(self, found: SearchResult, offset: int) -> None:
        self.heap.add_result(found.scores, np.where(found.ids >= 0, found.ids + offset, -1))
        self.build_s += found.build_s
        self.search_s += found.search_s
        self.flops += found.flops_per_query or 0.0
        self.bytes_per_vec = found.bytes_per_vec

    def finish(self) -> SearchResult:
        self.heap.finalize()
        return SearchResult(self.heap.D, self.heap.I, self.build_s, self.search_s, self.bytes_per_vec, self.flops)


def split(views: ViewSet, pooled: dict, view, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(documents, queries) of ``view`` from the pooled layers of queries + documents, as ``views`` score."""
    emb = views.scored(pooled, view).numpy()
    return emb[n_queries:], emb[:n_queries]


def overlap(found: np.ndarray, exact: np.ndarray, k: int = RECALL_VS_EXACT) -> float:
    """Mean fraction of the exact top-k that the index also returns in its top-k."""
    return float(np.mean([len(set(f[:k]) & set(e[:k]) - {-1}) / k for f, e in zip(found, exact)]))
