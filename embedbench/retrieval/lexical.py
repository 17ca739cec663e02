"""BM25 through bm25s: the sparse reference row beside the dense ones, a retriever like any other.

Settings (:class:`embedbench.config.BM25Config`) default to Pyserini's BEIR "flat" runs."""
from __future__ import annotations

import logging
import os
import time

# bm25s imports JAX where it is installed and runs a top-k at import: on a GPU machine that starts JAX's GPU
# backend, which takes 75 % of the GPU's memory from PyTorch (105 of 139 GiB on an H200) and about 5 s.
# Its top-k needs no GPU; a JAX_PLATFORMS the user set is kept.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import bm25s  # noqa: E402
import numpy as np  # noqa: E402
import Stemmer  # noqa: E402

from embedbench.config import BM25Config
from embedbench.errors import EmbedbenchError
from embedbench.retrieval.base import SearchResult

logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG


class BM25:
    def __init__(self, settings: BM25Config, key: str = "model.bm25"):
        stemmer = settings.stemmer
        if stemmer and stemmer not in Stemmer.algorithms():
            raise EmbedbenchError(f"{key}.stemmer={stemmer}: choose one of {Stemmer.algorithms()} or null")
        self.params = dict(k1=settings.k1, b=settings.b, method=str(settings.method))
        self.stemmer = Stemmer.Stemmer(stemmer) if stemmer else None
        self.stopwords = settings.stopwords

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

    def retrieve(self, queries: list[str], docs: list[str], k: int, desc: str = "") -> dict[str, SearchResult]:
        """The one variant BM25 has, named like a full view ('')."""
        start = time.perf_counter()
        index = self.index(docs)
        built = time.perf_counter()
        k = min(k, len(docs))
        ids, scores = index.retrieve(self._tokens(queries), k=k, show_progress=False, n_threads=1)
        searched = time.perf_counter()
        postings = sum(index.scores[part].nbytes for part in ("data", "indices", "indptr"))
        return {"": SearchResult(scores.astype(np.float32), ids, built - start, searched - built,
                                 postings / len(docs))}
