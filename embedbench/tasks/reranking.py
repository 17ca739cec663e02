"""Reranking: each query's given candidates ordered by similarity, scored like mteb's reranking
tasks (retrieval measures over the candidates only; main score MAP@1000, MRR@10 beside it).

Only the candidate documents are encoded, not the whole corpus."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from embedbench.config import RerankingTaskConfig
from embedbench.data.beir import BeirDataset, load_beir, load_candidates, subsample
from embedbench.embedding.prompts import RERANKING_DOCUMENT, RERANKING_QUERY
from embedbench.tasks.base import Limits, ScoredModel, TaskBase, slice_note
from embedbench.tasks.retrieval import checked_metrics, metrics_by_view, write_view_run


@dataclass
class RerankingTask(TaskBase):
    dataset: BeirDataset
    candidates: dict[str, list[str]]  # query id -> doc ids to order
    metrics: list[str]
    runs: Path | None = None  # a folder for each view's ordering as a TREC run file (eval.save_runs)

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    @classmethod
    def load(cls, spec: RerankingTaskConfig, root: Path, split: str, limits: Limits = Limits()) -> RerankingTask:
        full = load_beir(spec.name, root, split)
        dataset = subsample(full, limits.max_queries, None, limits.seed)
        path = root / spec.candidates  # relative to the BEIR folder, or absolute
        task = cls(spec.name, dataset, load_candidates(path, dataset), checked_metrics(spec.metrics),
                   instruction=spec.instruction)
        task.sliced = slice_note({"queries": (len(dataset.queries), len(full.queries))})
        return task

    def evaluate(self, model: ScoredModel) -> dict[str, float]:
        qids = list(self.dataset.queries)
        doc_ids = list(dict.fromkeys(d for qid in qids for d in self.candidates[qid]))
        row = {doc_id: i for i, doc_id in enumerate(doc_ids)}
        texts = (model.prompt([self.dataset.queries[q] for q in qids], RERANKING_QUERY, self.instruction)
                 + model.prompt([self.dataset.doc_text(d) for d in doc_ids], RERANKING_DOCUMENT))
        pooled = model.embed(texts, f"{self.name}: {len(qids)} queries + {len(doc_ids)} candidate docs")
        out: dict[str, float] = {}
        for view in model.views.views:
            emb = model.views.scored(pooled, view)
            queries, docs = emb[: len(qids)], emb[len(qids):]
            run = {}
            for i, qid in enumerate(qids):
                shortlist = self.candidates[qid]
                scores = docs[torch.tensor([row[d] for d in shortlist])] @ queries[i]
                run[qid] = dict(zip(shortlist, scores.tolist()))
            if self.runs is not None:
                write_view_run(self.runs, self.name, model.views.name(view), run)
            out.update(metrics_by_view(self.name, self.dataset.qrels, run, self.metrics, model.views.name(view)))
        return out
