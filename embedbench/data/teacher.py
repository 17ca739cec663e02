"""Teacher scores for distillation (TAS-B's Margin-MSE, list-wise KL, DSE's score MSE): each training
row's query against its positive and negatives, scored once by the teacher and stored.

A teacher is a bi-encoder (any model name / folder / run folder, scoring by its own similarity: cosine or dot), a
cross-encoder (sentence-transformers' CrossEncoder on the pair), BM25 (a lexical teacher, as SPAR distils one)
or ``grades``: the qrels grades themselves, for list-wise losses on graded judgements. Scores are multiplied
by ``scale`` to put them on the student's scale (cosine in [-1, 1]).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

from embedbench.atomic import atomic_write
from embedbench.config import EncodeConfig, TeacherConfig, ViewsConfig
from embedbench.data.beir import BeirDataset
from embedbench.embedding.cache import EmbeddingCache, weights_fingerprint
from embedbench.embedding.embedder import Embedder
from embedbench.embedding.encoder import load_encoder, resolve_batch_size, resolve_device
from embedbench.embedding.sources import resolve_model_path

log = logging.getLogger(__name__)


def teacher_scores(ds: BeirDataset, rows: list[dict], teacher_cfg: TeacherConfig, encode_cfg: EncodeConfig,
                   cache: EmbeddingCache | None, store: str, device: str = "auto") -> list[list[float]]:
    """[teacher(q, positive), teacher(q, negative_1), ...] x scale, one list per row."""
    kind = str(teacher_cfg.kind)
    scorer, fingerprint = _scorer(kind, teacher_cfg, encode_cfg, cache, device)
    key = hashlib.sha256(f"{kind}|{fingerprint}|{json.dumps(rows)}".encode()).hexdigest()
    path = Path(store) / f"{ds.name}-teacher-{key[:20]}.json"
    if path.is_file():
        raw = json.loads(path.read_text())
        log.info("teacher scores: read from %s", path)
    else:
        raw = scorer(ds, rows)
        with atomic_write(path) as fh:
            json.dump(raw, fh)
        teacher = f"{kind} {teacher_cfg.model}" if kind in ("embedder", "cross_encoder") else kind
        log.info("teacher scores: %d rows scored by %s, stored in %s", len(rows), teacher, path)
    return [[teacher_cfg.scale * s for s in row] for row in raw]


def _candidates(row: dict) -> list[str]:
    return [row["positive"], *row["negatives"]]


def _scorer(kind: str, teacher_cfg, encode_cfg, cache, device: str):
    """(scoring function over (dataset, rows), fingerprint of what gives the scores)."""
    if kind == "grades":  # no model: the qrels grade of each candidate (unjudged: 0)
        return (lambda ds, rows: [[ds.qrels[r["query"]].get(d, 0) for d in _candidates(r)] for r in rows]), "grades"
    if kind == "bm25":
        from embedbench.retrieval.lexical import BM25

        retriever = BM25(teacher_cfg.bm25, "data.teacher.bm25")

        def bm25(ds, rows):
            doc_ids = list(ds.corpus)
            position = {d: i for i, d in enumerate(doc_ids)}
            return retriever.pair_scores([ds.doc_text(d) for d in doc_ids], [ds.queries[r["query"]] for r in rows],
                                         [[position[d] for d in _candidates(r)] for r in rows])

        return bm25, json.dumps(asdict(teacher_cfg.bm25), sort_keys=True)
    if kind == "cross_encoder":
        from sentence_transformers import CrossEncoder

        path, _ = resolve_model_path(str(teacher_cfg.model))
        model = CrossEncoder(path, device=resolve_device(device), model_kwargs={"use_safetensors": True})

        def cross(ds, rows):
            pairs = [(ds.queries[r["query"]], ds.doc_text(d)) for r in rows for d in _candidates(r)]
            batch_size = resolve_batch_size(encode_cfg.batch_size, model.device.type)
            flat = model.predict(pairs, batch_size=batch_size, show_progress_bar=True).tolist()
            width = len(_candidates(rows[0]))
            return [flat[i:i + width] for i in range(0, len(flat), width)]

        return cross, weights_fingerprint(model.model)

    encoder = load_encoder(teacher_cfg.model, resolve_device(device))
    embed = Embedder(encoder, [encoder.n_layers], encode_cfg, cache)

    views = encoder.views(ViewsConfig())  # the full view, scored as the teacher scores

    def embedder(ds, rows):
        qids = list(dict.fromkeys(r["query"] for r in rows))
        docs = list(dict.fromkeys(d for r in rows for d in _candidates(r)))
        q = views.scored(embed([ds.queries[i] for i in qids], "teacher: queries"), views.full)
        d = views.scored(embed([ds.doc_text(i) for i in docs], "teacher: documents"), views.full)
        q_row, d_row = {i: n for n, i in enumerate(qids)}, {i: n for n, i in enumerate(docs)}
        return [[float(q[q_row[r["query"]]] @ d[d_row[doc]]) for doc in _candidates(r)] for r in rows]

    return embedder, f"{embed.fingerprint}|{views.similarity}"
