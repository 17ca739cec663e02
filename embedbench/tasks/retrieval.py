"""BEIR retrieval: each query's ranking from the model's retriever (every view, exact and through each
index; or BM25), scored with trec_eval's measures via pytrec_eval, as mteb does."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import pytrec_eval

from embedbench.config import IndexConfig
from embedbench.data.beir import BeirDataset, subsample, write_trec_run
from embedbench.embedding.prompts import RETRIEVAL_DOCUMENT, RETRIEVAL_QUERY
from embedbench.errors import EmbedbenchError
from embedbench.retrieval.base import SearchResult
from embedbench.retrieval.dense import COMPAT, REFERENCE
from embedbench.tasks.base import Limits, ScoredModel, TaskBase, slice_note

# our metric name -> trec_eval measure family; mrr is computed on the top-k cut of the run
TREC_MEASURES = {"ndcg_at": "ndcg_cut", "map_at": "map_cut", "recall_at": "recall", "precision_at": "P"}
METRIC = re.compile(r"^(ndcg_at|map_at|recall_at|precision_at|mrr_at)_(\d+)$")


def parse_metric(name: str) -> tuple[str, int]:
    match = METRIC.match(name)
    if not match:
        raise EmbedbenchError(f"eval metric {name!r}: expected one of ndcg_at_K, map_at_K, recall_at_K, "
                              "precision_at_K, mrr_at_K")
    return match.group(1), int(match.group(2))


def top_k(run: dict[str, float], k: int) -> dict[str, float]:
    """The k best docs, ties broken by doc id descending as trec_eval does."""
    return dict(sorted(run.items(), key=lambda item: (item[1], item[0]), reverse=True)[:k])


def retrieval_metrics(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]],
                      names: list[str]) -> dict[str, float]:
    """Mean over judged queries of each named metric, e.g. ``ndcg_at_10``."""
    parsed = {name: parse_metric(name) for name in names}
    measures = {f"{TREC_MEASURES[family]}.{k}" for family, k in parsed.values() if family != "mrr_at"}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run) if measures else {}
    results = {}
    for name, (family, k) in parsed.items():
        if family == "mrr_at":
            cut_run = {qid: top_k(docs, k) for qid, docs in run.items()}
            scores = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(cut_run)
            values = [s["recip_rank"] for s in scores.values()]
        else:
            values = [s[f"{TREC_MEASURES[family]}_{k}"] for s in per_query.values()]
        results[name] = sum(values) / len(values) if values else 0.0
    return results


def checked_metrics(metrics: list[str]) -> list[str]:
    for metric in metrics:
        parse_metric(metric)
    return list(metrics)


def metrics_by_view(name: str, qrels, run, metrics: list[str], suffix: str) -> dict[str, float]:
    return {f"{name}/{metric}{suffix}": value for metric, value in retrieval_metrics(qrels, run, metrics).items()}


@dataclass
class RetrievalTask(TaskBase):
    dataset: BeirDataset
    metrics: list[str]
    indexes: tuple[IndexConfig, ...] = ()  # scored beside exact search, per view (index=)
    ignore_identical_ids: bool = False  # drop a doc whose id is the query's (sets where queries sit in the corpus)
    runs: Path | None = None  # a folder for each view's ranking as a TREC run file (eval.save_runs)
    needs_embeddings = False

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    @classmethod
    def load(cls, name: str, full: BeirDataset, metrics: list[str], limits: Limits = Limits(),
             indexes: tuple[IndexConfig, ...] = (), ignore_identical_ids: bool = False,
             instruction: str | None = None) -> RetrievalTask:
        dataset = subsample(full, limits.max_queries, limits.max_docs, limits.seed)
        task = cls(name, dataset, metrics, tuple(indexes), ignore_identical_ids, instruction=instruction)
        task.sliced = slice_note({"queries": (len(dataset.queries), len(full.queries)),
                                  "documents": (len(dataset.corpus), len(full.corpus))})
        return task

    def evaluate(self, model: ScoredModel) -> dict[str, float]:
        qids, doc_ids = list(self.dataset.queries), list(self.dataset.corpus)
        k = max(parse_metric(m)[1] for m in self.metrics) + int(self.ignore_identical_ids)
        found = model.retriever(self.indexes).retrieve(
            model.prompt([self.dataset.queries[q] for q in qids], RETRIEVAL_QUERY, self.instruction),
            model.prompt([self.dataset.doc_text(d) for d in doc_ids], RETRIEVAL_DOCUMENT), k,
            f"{self.name}: {len(qids)} queries + {len(doc_ids)} docs")
        out: dict[str, float] = {}
        for suffix, result in found.items():
            out.update(self._scores(qids, doc_ids, result, suffix))
        main = f"{self.name}/{self.main_metric}"
        for suffix in found:  # the empirical compatibility criterion: new -> reference beats reference -> reference
            if suffix.endswith(COMPAT):
                view = suffix[:-len(COMPAT)]  # '/' or '/d64_'
                compatible = out[main + suffix] > out[main + view + REFERENCE]
                out[f"{self.name}/compatible{view.rstrip('_/')}"] = float(compatible)
        return out

    def _scores(self, qids, doc_ids, found: SearchResult, suffix: str) -> dict[str, float]:
        run = {qid: {doc_ids[j]: float(s) for s, j in zip(row_s, row_i)
                     if j >= 0 and not (self.ignore_identical_ids and doc_ids[j] == qid)}
               for qid, row_s, row_i in zip(qids, found.scores, found.ids)}
        if self.runs is not None:
            write_view_run(self.runs, self.name, suffix, run)
        out = metrics_by_view(self.name, self.dataset.qrels, run, self.metrics, suffix)
        out[f"{self.name}/index_build_s{suffix}"] = found.build_s
        out[f"{self.name}/search_qps{suffix}"] = len(qids) / max(found.search_s, 1e-9)
        out[f"{self.name}/bytes_per_vec{suffix}"] = found.bytes_per_vec
        if found.flops_per_query is not None:
            out[f"{self.name}/flops_per_query{suffix}"] = found.flops_per_query
        if found.recall_vs_exact is not None:
            out[f"{self.name}/recall_vs_exact_at_10{suffix}"] = found.recall_vs_exact
        return out


@dataclass
class SubsetAverage:
    """A collection made of subsets (CQADupStack's twelve forums): each scored as a task of its own and
    reported (``cqadupstack-android/ndcg_at_10``), and their unweighted mean under the collection's name
    (``cqadupstack/ndcg_at_10``), the figure BEIR and MTEB report."""

    name: str
    parts: list[RetrievalTask]
    needs_embeddings = False

    @property
    def indexes(self) -> tuple[IndexConfig, ...]:
        return self.parts[0].indexes

    @property
    def sliced(self) -> str | None:
        notes = [f"{part.name}: {part.sliced}" for part in self.parts if part.sliced]
        return "; ".join(notes) or None

    @property
    def main_scores(self) -> dict[str, str]:
        return {self.name: self.parts[0].main_metric}

    def evaluate(self, model: ScoredModel) -> dict[str, float]:
        out: dict[str, float] = {}
        per_part = []
        for part in self.parts:
            scores = part.evaluate(model)
            out.update(scores)
            per_part.append({key[len(part.name) + 1:]: value for key, value in scores.items()})
        for metric in per_part[0]:
            out[f"{self.name}/{metric}"] = sum(scores[metric] for scores in per_part) / len(per_part)
        return out


def write_view_run(folder: Path, task: str, suffix: str, run: dict[str, dict[str, float]]) -> None:
    """One view's ranking as ``<task>[.<view>].trec``: '' or '.d64', '.l3_d64', '.d64_binary'."""
    write_trec_run(folder / f"{task}{suffix.replace('/', '.')}.trec", run, f"embedbench{suffix}")


def writing_runs(task, folder: Path):
    """``task``, or a copy of it whose rankings (retrieval's, reranking's) go to ``folder`` as TREC run files (a
    collection of subsets: each part's)."""
    if "runs" in getattr(task, "__dataclass_fields__", {}):
        copied = copy.copy(task)
        copied.runs = folder
        return copied
    if isinstance(task, SubsetAverage):
        copied = copy.copy(task)
        copied.parts = [writing_runs(part, folder) for part in task.parts]
        return copied
    return task
