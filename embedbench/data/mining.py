"""Hard-negative mining (``data.negatives=mined``): a miner model ranks the corpus for every training
query by its own similarity (cosine or dot), and negatives are drawn from a band of ranks below a margin
of the positive's score.

Skipping the top ranks and keeping only candidates scoring under ``margin`` x the positive's score
(NV-Retriever's TopK-PercPos) guard against false negatives: unjudged documents as relevant as the
positive. The corpus is encoded and searched shard by shard, each shard's top-k merged into one
heap, so memory is bounded by a shard, not by the corpus. The mined set is written once and read
back by any later run with the same miner weights, data and settings (the key hashes all three).
"""
from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from embedbench.atomic import atomic_write
from embedbench.config import EncodeConfig, MiningConfig, ViewsConfig
from embedbench.data.beir import BeirDataset
from embedbench.embedding.cache import EmbeddingCache, texts_fingerprint
from embedbench.embedding.embedder import Embedder
from embedbench.embedding.encoder import load_encoder, resolve_device
from embedbench.errors import EmbedbenchError

log = logging.getLogger(__name__)


@dataclass
class MinedSet:
    rows: list[dict]  # {"query": qid, "positive": doc id, "negatives": [doc id, ...]} per training pair
    path: Path
    encoded: int  # texts encoded to build it; 0 when read from the store


def pairs_key(ds: BeirDataset, pairs: list[tuple[str, str]]) -> str:
    """What the training pairs and their corpus are, independent of where they were read from."""
    doc_ids = list(ds.corpus)
    texts = [ds.doc_text(d) for d in doc_ids]
    parts = [texts_fingerprint(doc_ids), texts_fingerprint(texts),
             texts_fingerprint([ds.queries[q] for q, _ in pairs]),
             texts_fingerprint([f"{q}\t{d}" for q, d in pairs])]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def random_documents(rng: random.Random, doc_ids: list[str], exclude: set[str], n: int, query: str) -> list[str]:
    """``n`` distinct random documents outside ``exclude``, drawn by rejection: O(n) per pair, where
    filtering the corpus would cost a pass over all of it (millions of documents) for every short pair."""
    if len(doc_ids) - len(exclude) < n:
        raise EmbedbenchError(f"data.mining: query {query} needs {n} more negatives than the corpus holds "
                              f"({len(doc_ids)} documents, {len(exclude)} of them judged or already picked)")
    exclude, picked = set(exclude), []
    while len(picked) < n:
        doc = doc_ids[rng.randrange(len(doc_ids))]
        if doc not in exclude:
            exclude.add(doc)
            picked.append(doc)
    return picked


def mine_negatives(ds: BeirDataset, pairs: list[tuple[str, str]], mining: MiningConfig, encode: EncodeConfig,
                   cache: EmbeddingCache | None, seed: int, device: str = "auto") -> MinedSet:
    (lo, hi), count, margin = mining.ranks, mining.count, mining.margin
    encoder = load_encoder(mining.model, resolve_device(device))
    layer = encoder.n_layers
    embed = Embedder(encoder, [layer], encode, cache)
    views = encoder.views(ViewsConfig())  # the full view, scored as the miner scores
    settings = json.dumps({"ranks": [lo, hi], "count": count, "margin": margin, "seed": seed,
                           "similarity": views.similarity})
    key = hashlib.sha256("|".join([embed.fingerprint, pairs_key(ds, pairs), settings]).encode()).hexdigest()
    path = Path(mining.store) / f"{ds.name}-{key[:20]}.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        log.info("hard negatives: %d pairs read from %s", len(rows), path)
        return MinedSet(rows, path, 0)

    qids = list(dict.fromkeys(q for q, _ in pairs))
    queries = views.scored(embed([ds.queries[q] for q in qids], "mining: queries"), views.full).numpy()
    wanted = {(q, d) for q, d in pairs}
    positive_score: dict[tuple[str, str], float] = {}
    doc_ids = list(ds.corpus)
    k = min(hi + max(len(ds.qrels[q]) for q in qids), len(doc_ids))
    heap = faiss.ResultHeap(len(qids), k, keep_max=True)  # inner products: the largest are the nearest
    row_of = {q: i for i, q in enumerate(qids)}
    shard = mining.shard_docs
    for start in range(0, len(doc_ids), shard):
        ids = doc_ids[start:start + shard]
        docs = views.scored(embed([ds.doc_text(d) for d in ids], f"mining: corpus {start:,}+"), views.full).numpy()
        index = faiss.IndexFlatIP(docs.shape[1])
        index.add(docs)
        scores, found = index.search(queries, min(k, len(ids)))
        heap.add_result(scores, np.where(found >= 0, found + start, -1))
        local = {d: i for i, d in enumerate(ids)}
        for q, d in wanted:
            if d in local:
                positive_score[(q, d)] = float(queries[row_of[q]] @ docs[local[d]])
    heap.finalize()
    ranked = {q: [doc_ids[i] for i in heap.I[row_of[q]] if i >= 0] for q in qids}
    ranked_scores = {q: heap.D[row_of[q]] for q in qids}

    rng = random.Random(seed)
    rows, short = [], 0
    for q, d in pairs:
        judged = {doc for doc, grade in ds.qrels[q].items() if grade > 0}
        ceiling = margin * positive_score[(q, d)]
        band = [doc for doc, s in zip(ranked[q][lo:hi], ranked_scores[q][lo:hi]) if doc not in judged and s < ceiling]
        if len(band) < count:  # too few under the margin: random unjudged documents fill up
            short += 1
            band += random_documents(rng, doc_ids, judged | set(band), count - len(band), q)
        rows.append({"query": q, "positive": d, "negatives": rng.sample(band, count)})
    if short:
        log.warning("hard negatives: %d of %d pairs had fewer than %d candidates in ranks %d-%d under the margin; "
                    "filled with random documents", short, len(pairs), count, lo, hi)
    with atomic_write(path) as fh:  # complete or absent: a killed run never leaves half a set to be reused
        fh.writelines(json.dumps(row) + "\n" for row in rows)
    log.info("hard negatives: %d pairs mined with %s, stored in %s", len(rows), mining.model, path)
    return MinedSet(rows, path, len(qids) + len(doc_ids))
