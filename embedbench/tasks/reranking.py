"""Reranking: each query's given candidates ordered by similarity, scored like mteb's reranking
tasks (retrieval measures over the candidates only; main score MAP@1000, MRR@10 beside it).

Only the candidate documents are encoded, not the whole corpus."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from embedbench.data.beir import BeirDataset, load_candidates, subsample
from embedbench.tasks.retrieval import checked_metrics, load_split, metrics_by_view
from embedbench.views import ViewSet, cut


@dataclass
class RerankingTask:
    name: str
    dataset: BeirDataset
    candidates: dict[str, list[str]]  # query id -> doc ids to order
    metrics: list[str]

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    @classmethod
    def from_config(cls, name, task_cfg, cfg):
        root, dataset = load_split(name, task_cfg, cfg)
        dataset = subsample(dataset, cfg.eval.get("max_queries"), None, cfg.seed)
        path = root / task_cfg.candidates  # relative to the BEIR folder, or absolute
        return cls(name, dataset, load_candidates(path, dataset), checked_metrics(task_cfg))

    def evaluate(self, embed, views: ViewSet) -> dict[str, float]:
        qids = list(self.dataset.queries)
        doc_ids = list(dict.fromkeys(d for qid in qids for d in self.candidates[qid]))
        row = {doc_id: i for i, doc_id in enumerate(doc_ids)}
        texts = [self.dataset.queries[q] for q in qids] + [self.dataset.doc_text(d) for d in doc_ids]
        pooled = embed(texts, f"{self.name}: {len(qids)} queries + {len(doc_ids)} candidate docs")
        out: dict[str, float] = {}
        for view in views.views:
            emb = cut(pooled[view.layer], view.dim)
            queries, docs = emb[: len(qids)], emb[len(qids):]
            run = {}
            for i, qid in enumerate(qids):
                shortlist = self.candidates[qid]
                scores = docs[torch.tensor([row[d] for d in shortlist])] @ queries[i]
                run[qid] = dict(zip(shortlist, scores.tolist()))
            out.update(metrics_by_view(self.name, self.dataset.qrels, run, self.metrics, views.name(view)))
        return out
