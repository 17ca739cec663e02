"""Training examples as text columns, in the order the losses read them:
- (anchor, positive[, negative_1..k][, label]) from BEIR train qrels, with mined hard negatives and
  teacher scores when asked for (contrastive and distillation objectives);
- (sentence1, sentence2, label) scored pairs for CoSENT / AnglE;
- (anchor, candidate_1..n, label) graded lists for list-wise losses;
- (anchor, positive) made from unlabeled text (``format: mirror`` / ``cropping``).
"""
from __future__ import annotations

from datasets import Dataset

from embedbench.config import DataConfig, EncodeConfig
from embedbench.data.beir import BeirDataset, load_collection
from embedbench.data.files import data_file, jsonl_records
from embedbench.data.tables import read_sts_benchmark
from embedbench.embedding.cache import EmbeddingCache
from embedbench.errors import EmbedbenchError, at


def training_pairs(data_cfg: DataConfig, max_examples: int | None, seed: int, encode: EncodeConfig,
                   cache: EmbeddingCache | None, device: str = "auto") -> Dataset:
    """The training set ``data=`` names, cut to ``max_examples``; ``encode``, ``cache`` and ``device`` serve
    the models that mine negatives and score them as teachers."""
    if data_cfg.format == "scored_pairs":
        return scored_pairs(data_cfg, max_examples)
    if data_cfg.format == "graded_lists":
        return graded_lists(data_cfg, max_examples)
    if data_cfg.format in ("mirror", "cropping"):
        from embedbench.data.unlabeled import self_supervised_pairs

        return self_supervised_pairs(data_cfg, max_examples, seed)
    return qrels_training_set(data_cfg, max_examples, seed, encode, cache, device)


def scored_pairs(data_cfg, max_examples: int | None) -> Dataset:
    """STS-style pairs, gold scores scaled to 0..1 (CoSENT and AnglE only use their order)."""
    pairs = read_sts_benchmark(data_file(data_cfg.train, "data.train"), max_score=data_cfg.max_score)
    n = max_examples or len(pairs.scores)
    return Dataset.from_dict({"sentence1": pairs.sentences1[:n], "sentence2": pairs.sentences2[:n],
                              "label": [score / data_cfg.max_score for score in pairs.scores[:n]]})


def graded_lists(data_cfg, max_examples: int | None) -> Dataset:
    """JSON lines ``{"query": text, "docs": [text, ...], "grades": [number, ...]}``; every list is cut to
    ``list_size`` (lists shorter than that are an error: a batch needs equal lists)."""
    path = data_file(data_cfg.train, "data.train")
    size = data_cfg.list_size
    anchors, columns, labels = [], [[] for _ in range(size)], []
    for lineno, record in jsonl_records(path, ("query", "docs", "grades")):
        docs, grades = record["docs"], record["grades"]
        if len(docs) != len(grades):
            raise at(path, lineno, f"{len(docs)} docs but {len(grades)} grades")
        if len(docs) < size:
            raise at(path, lineno, f"{len(docs)} docs; data.list_size={size} needs at least that many")
        anchors.append(record["query"])
        for column, doc in zip(columns, docs[:size]):
            column.append(doc)
        labels.append([float(g) for g in grades[:size]])
        if max_examples and len(anchors) == max_examples:
            break
    if not anchors:
        raise at(path, None, "no lists")
    return Dataset.from_dict({"anchor": anchors, **{f"candidate_{i + 1}": c for i, c in enumerate(columns)},
                              "label": labels})


def judged_pairs(data_cfg, max_examples: int | None) -> tuple[BeirDataset, list[tuple[str, str]]]:
    """The train split and its (query id, relevant doc id) pairs, every positive judgement."""
    ds = load_collection(data_cfg, data_cfg.train_split)
    pairs = [(qid, doc_id) for qid, docs in ds.qrels.items() for doc_id, grade in docs.items() if grade > 0]
    pairs = pairs[:max_examples] if max_examples else pairs
    if not pairs:
        raise EmbedbenchError(f"data={data_cfg.name}: split {data_cfg.train_split!r} has no positive pairs")
    return ds, pairs


def qrels_pairs(data_cfg, max_examples: int | None) -> Dataset:
    """(query, relevant document) for every positive judgement of the train split."""
    ds, pairs = judged_pairs(data_cfg, max_examples)
    return Dataset.from_dict({"anchor": [ds.queries[q] for q, _ in pairs],
                              "positive": [ds.doc_text(d) for _, d in pairs]})


def qrels_training_set(data_cfg: DataConfig, max_examples: int | None, seed: int, encode: EncodeConfig,
                       cache: EmbeddingCache | None, device: str) -> Dataset:
    """Train qrels pairs; with ``data.negatives=mined`` k hard negatives each, and with a
    ``data.teacher`` the teacher's scores of [positive, negatives] as ``label``."""
    if data_cfg.negatives is None:
        return qrels_pairs(data_cfg, max_examples)
    from embedbench.data.mining import mine_negatives

    ds, pairs = judged_pairs(data_cfg, max_examples)
    mined = mine_negatives(ds, pairs, data_cfg.mining, encode, cache, seed, device)
    columns = {"anchor": [ds.queries[r["query"]] for r in mined.rows],
               "positive": [ds.doc_text(r["positive"]) for r in mined.rows]}
    for i in range(data_cfg.mining.count):
        columns[f"negative_{i + 1}"] = [ds.doc_text(r["negatives"][i]) for r in mined.rows]
    if data_cfg.teacher.kind:
        from embedbench.data.teacher import teacher_scores

        columns["label"] = teacher_scores(ds, mined.rows, data_cfg.teacher, encode, cache, data_cfg.mining.store,
                                          device)
    return Dataset.from_dict(columns)
