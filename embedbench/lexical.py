"""BM25 through bm25s: the sparse reference row beside the dense ones.

Defaults follow Pyserini's BEIR "flat" runs (title and text in one field, k1 0.9, b 0.4, Porter
stemming, Lucene's English stop words, Lucene's BM25 variant)."""
from __future__ import annotations

import logging
import time

import bm25s
import numpy as np
import Stemmer

from embedbench.errors import EmbedbenchError
from embedbench.index import SearchResult

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG


class BM25:
    def __init__(self, k1: float = 0.9, b: float = 0.4, method: str = "lucene", stemmer: str | None = "porter",
                 stopwords: str | None = "en"):
        if stemmer and stemmer not in Stemmer.algorithms():
            raise EmbedbenchError(f"model.stemmer={stemmer}: choose one of {Stemmer.algorithms()} or null")
        self.params = dict(k1=k1, b=b, method=method)
        self.stemmer = Stemmer.Stemmer(stemmer) if stemmer else None
        self.stopwords = stopwords

    def _tokens(self, texts: list[str]):
        return bm25s.tokenize(texts, stopwords=self.stopwords, stemmer=self.stemmer, show_progress=False)

    def index(self, docs: list[str]) -> bm25s.BM25:
        index = bm25s.BM25(**self.params)
        index.index(self._tokens(docs), show_progress=False)
        return index

    def pair_scores(self, docs: list[str], queries: list[str], candidates: list[list[int]]) -> list[list[float]]:
        """BM25 of each query against its candidate documents (indexes into ``docs``)."""
        index = self.index(docs)
        tokens = bm25s.tokenize(queries, stopwords=self.stopwords, stemmer=self.stemmer, return_ids=False,
                                show_progress=False)
        return [index.get_scores(words)[rows].tolist() for words, rows in zip(tokens, candidates)]

    def search(self, docs: list[str], queries: list[str], k: int) -> SearchResult:
        start = time.perf_counter()
        index = self.index(docs)
        built = time.perf_counter()
        k = min(k, len(docs))
        ids, scores = index.retrieve(self._tokens(queries), k=k, show_progress=False, n_threads=1)
        searched = time.perf_counter()
        postings = sum(index.scores[part].nbytes for part in ("data", "indices", "indptr"))
        return SearchResult(scores.astype(np.float32), ids, built - start, searched - built, postings / len(docs))
