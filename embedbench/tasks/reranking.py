"""Reranking: each query's given candidates ordered by similarity, scored like mteb's reranking
tasks (retrieval measures over the candidates only; main score MAP@1000, MRR@10 beside it).

Only the candidate documents are encoded, not the whole corpus."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from embedbench.config import RerankingTaskConfig
from embedbench.data.beir import BeirDataset, load_beir, load_candidates, load_reranking_samples, subsample
from embedbench.data.hub_tables import HubTable
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
        """Over the BEIR folder ``root`` and the candidates file (relative to it, or absolute)."""
        full = load_beir(spec.name, root, split)
        dataset = subsample(full, limits.max_queries, None, limits.seed)
        return cls.over(spec, full, dataset, load_candidates(root / spec.candidates, dataset))

    @classmethod
    def from_samples(cls, spec: RerankingTaskConfig, path: Path | HubTable, split: str,
                     limits: Limits = Limits()) -> RerankingTask:
        """Over mteb's reranking samples in ``path``, a jsonl file or a Hugging Face dataset's split."""
        full, candidates = load_reranking_samples(spec.name, path, split)
        dataset = subsample(full, limits.max_queries, None, limits.seed)
        return cls.over(spec, full, dataset, {qid: candidates[qid] for qid in dataset.queries})

    @classmethod
    def over(cls, spec: RerankingTaskConfig, full: BeirDataset, dataset: BeirDataset,
             candidates: dict[str, list[str]]) -> RerankingTask:
        task = cls(spec.name, dataset, candidates, checked_metrics(spec.metrics), instruction=spec.instruction)
        task.sliced = slice_note({"queries": (len(dataset.queries), len(full.queries))})
        return task

    def evaluate(self, model: ScoredModel) -> dict[str, float]:
        qids = list(self.dataset.queries)
        # a text that is the candidate of several queries (under ids of its own in mteb's samples) is encoded once
        doc_text = {d: self.dataset.doc_text(d) for qid in qids for d in self.candidates[qid]}
        distinct = {text: i for i, text in enumerate(dict.fromkeys(doc_text.values()))}
        row = {doc_id: distinct[text] for doc_id, text in doc_text.items()}
        texts = (model.prompt([self.dataset.queries[q] for q in qids], RERANKING_QUERY, self.instruction)
                 + model.prompt(list(distinct), RERANKING_DOCUMENT))
        pooled = model.embed(texts, f"{self.name}: {len(qids)} queries + {len(distinct)} candidate docs")
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
