"""Training examples as text columns: (anchor, positive) pairs from BEIR train qrels for contrastive
objectives, or (sentence1, sentence2, label) scored pairs for CoSENT / AnglE."""
from __future__ import annotations

from datasets import Dataset

from embedbench.data.beir import load_beir, resolve_root
from embedbench.data.files import data_file
from embedbench.data.sts import read_sts
from embedbench.errors import EmbedbenchError


def training_pairs(data_cfg, max_examples: int | None = None) -> Dataset:
    """The training set ``data=`` names, cut to ``max_examples``."""
    kind = data_cfg.get("format", "beir")
    if kind == "scored_pairs":
        return scored_pairs(data_cfg, max_examples)
    if kind != "beir":
        raise EmbedbenchError(f"data={data_cfg.name}: format {kind!r} has no training reader "
                              "(beir, scored_pairs)")
    return qrels_pairs(data_cfg, max_examples)


def scored_pairs(data_cfg, max_examples: int | None) -> Dataset:
    """STS-style pairs, gold scores scaled to 0..1 (CoSENT and AnglE only use their order)."""
    pairs = read_sts(data_file(data_cfg.train, f"data.{data_cfg.name}.train"), max_score=data_cfg.max_score)
    n = max_examples or len(pairs.scores)
    return Dataset.from_dict({"sentence1": pairs.sentences1[:n], "sentence2": pairs.sentences2[:n],
                              "label": [score / data_cfg.max_score for score in pairs.scores[:n]]})


def qrels_pairs(data_cfg, max_examples: int | None) -> Dataset:
    """(query, relevant document) for every positive judgement of the train split."""
    root = resolve_root(data_cfg.name, data_cfg.get("root"), data_cfg.get("url"))
    ds = load_beir(data_cfg.name, root, data_cfg.train_split)
    anchors, positives = [], []
    for qid, docs in ds.qrels.items():
        for doc_id, grade in docs.items():
            if grade > 0:
                anchors.append(ds.queries[qid])
                positives.append(ds.doc_text(doc_id))
    if max_examples:
        anchors, positives = anchors[:max_examples], positives[:max_examples]
    if not anchors:
        raise EmbedbenchError(f"data={data_cfg.name}: split {data_cfg.train_split!r} has no positive pairs")
    return Dataset.from_dict({"anchor": anchors, "positive": positives})
