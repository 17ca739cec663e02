"""Training examples: (anchor, positive) pairs a contrastive objective reads as text columns."""
from __future__ import annotations

from datasets import Dataset

from embedbench.data.beir import load_beir, resolve_root
from embedbench.errors import EmbedbenchError


def training_pairs(data_cfg, max_examples: int | None = None) -> Dataset:
    """(query, relevant document) for every positive judgement of the train split."""
    if data_cfg.get("format", "beir") != "beir":
        raise EmbedbenchError(f"data={data_cfg.name}: format {data_cfg.format!r} has no training reader")
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
