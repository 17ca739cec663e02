"""BEIR retrieval: exact search per view, trec_eval measures via pytrec_eval (as mteb does)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytrec_eval

from embedbench.data.beir import BeirDataset, load_beir, resolve_root, subsample
from embedbench.errors import EmbedbenchError
from embedbench.index import IndexSpec, SearchResult, search
from embedbench.views import ViewSet, cut

# our metric name -> trec_eval measure family; mrr is computed on the top-k cut of the run
TREC_MEASURES = {"ndcg_at": "ndcg_cut", "map_at": "map_cut", "recall_at": "recall", "precision_at": "P"}
RECALL_VS_EXACT = 10  # an index's recall@10 against exact search of the same view
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


def load_split(name: str, task_cfg, cfg) -> tuple[Path, BeirDataset]:
    """The BEIR folder ``data=`` names and its evaluation split (or the task's ``split``)."""
    data = cfg.data
    # self-supervised formats train on unlabeled text and are scored on their BEIR folder's split
    if data.get("format", "beir") not in ("beir", "mirror", "cropping"):
        raise EmbedbenchError(f"data={data.name}: {task_cfg.type} needs a BEIR-format source, not {data.format}")
    root = resolve_root(data.name, data.get("root"), data.get("url"))
    return root, load_beir(name, root, task_cfg.get("split") or data.eval_split)


def checked_metrics(task_cfg) -> list[str]:
    metrics = list(task_cfg.metrics)
    for metric in metrics:
        parse_metric(metric)
    return metrics


def metrics_by_view(name: str, qrels, run, metrics: list[str], suffix: str) -> dict[str, float]:
    return {f"{name}/{metric}{suffix}": value for metric, value in retrieval_metrics(qrels, run, metrics).items()}


@dataclass
class RetrievalTask:
    name: str
    dataset: BeirDataset
    metrics: list[str]
    indexes: tuple[IndexSpec, ...] = ()  # scored beside exact search, per view (index=)
    ignore_identical_ids: bool = False  # drop a doc whose id is the query's (sets where queries sit in the corpus)

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    @classmethod
    def from_config(cls, name, task_cfg, cfg):
        _, dataset = load_split(name, task_cfg, cfg)
        dataset = subsample(dataset, cfg.eval.get("max_queries"), cfg.eval.get("max_docs"), cfg.seed)
        indexes = tuple(IndexSpec.from_config(key, spec) for key, spec in (cfg.get("index") or {}).items())
        return cls(name, dataset, checked_metrics(task_cfg), indexes, bool(task_cfg.get("ignore_identical_ids", False)))

    def evaluate(self, embed, views: ViewSet) -> dict[str, float]:
        qids, doc_ids = list(self.dataset.queries), list(self.dataset.corpus)
        texts = [self.dataset.queries[q] for q in qids] + [self.dataset.doc_text(d) for d in doc_ids]
        pooled = embed(texts, f"{self.name}: {len(qids)} queries + {len(doc_ids)} docs")
        k = max(max(parse_metric(m)[1] for m in self.metrics), RECALL_VS_EXACT) + int(self.ignore_identical_ids)
        out: dict[str, float] = {}
        for view in views.views:
            emb = cut(pooled[view.layer], view.dim).numpy()
            docs, queries = emb[len(qids):], emb[: len(qids)]
            exact = search(docs, queries, k)
            out.update(self._scores(qids, doc_ids, exact, views.name(view)))
            for spec in self.indexes:
                if spec.funnel_dim and spec.funnel_dim >= view.dim:
                    continue  # a funnel only shortlists at a dim below the view's
                found = search(docs, queries, k, spec)
                suffix = views.name(view, spec.name)
                out.update(self._scores(qids, doc_ids, found, suffix))
                out[f"{self.name}/recall_vs_exact_at_{RECALL_VS_EXACT}{suffix}"] = overlap(found.ids, exact.ids)
        return out

    def evaluate_lexical(self, retriever) -> dict[str, float]:
        """Scores of a lexical retriever (BM25) searching the raw texts; named like the full view."""
        qids, doc_ids = list(self.dataset.queries), list(self.dataset.corpus)
        k = max(parse_metric(m)[1] for m in self.metrics) + int(self.ignore_identical_ids)
        found = retriever.search([self.dataset.doc_text(d) for d in doc_ids],
                                 [self.dataset.queries[q] for q in qids], k)
        return self._scores(qids, doc_ids, found, "")

    def _scores(self, qids, doc_ids, found: SearchResult, suffix: str) -> dict[str, float]:
        run = {qid: {doc_ids[j]: float(s) for s, j in zip(row_s, row_i)
                     if j >= 0 and not (self.ignore_identical_ids and doc_ids[j] == qid)}
               for qid, row_s, row_i in zip(qids, found.scores, found.ids)}
        out = metrics_by_view(self.name, self.dataset.qrels, run, self.metrics, suffix)
        out[f"{self.name}/index_build_s{suffix}"] = found.build_s
        out[f"{self.name}/search_qps{suffix}"] = len(qids) / max(found.search_s, 1e-9)
        out[f"{self.name}/bytes_per_vec{suffix}"] = found.bytes_per_vec
        if found.flops_per_query is not None:
            out[f"{self.name}/flops_per_query{suffix}"] = found.flops_per_query
        return out


def overlap(found: np.ndarray, exact: np.ndarray, k: int = RECALL_VS_EXACT) -> float:
    """Mean fraction of the exact top-k that the index also returns in its top-k."""
    return float(np.mean([len(set(f[:k]) & set(e[:k]) - {-1}) / k for f, e in zip(found, exact)]))
