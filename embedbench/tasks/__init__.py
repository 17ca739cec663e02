"""Evaluation task types (one per module, each implementing :class:`embedbench.tasks.base.Task`), built from
their typed configs with explicit data folders, splits, limits and indexes, and scored in one place."""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from embedbench.config import (
    ClassificationTaskConfig,
    ClusteringTaskConfig,
    DataConfig,
    DataFormat,
    EvalConfig,
    IndexConfig,
    PairClassificationTaskConfig,
    RerankingTaskConfig,
    RetrievalTaskConfig,
    STSTaskConfig,
    TaskConfig,
)
from embedbench.data.beir import resolve_root
from embedbench.data.files import data_file
from embedbench.data.tables import read_labelled, read_labelled_pairs, read_line_aligned
from embedbench.errors import EmbedbenchError
from embedbench.phases import Phases
from embedbench.tasks.base import Limits, ScoredModel, Task
from embedbench.tasks.classification import ClassificationTask
from embedbench.tasks.clustering import ClusteringTask
from embedbench.tasks.mteb_tasks import MtebTasks
from embedbench.tasks.pair_classification import PairClassificationTask
from embedbench.tasks.reranking import RerankingTask
from embedbench.tasks.retrieval import RetrievalTask
from embedbench.tasks.sts import STSTask

BEIR_SOURCES = (DataFormat.beir, DataFormat.mirror, DataFormat.cropping)  # self-supervised formats keep a BEIR split


def build_tasks(eval_cfg: EvalConfig, data: DataConfig, indexes: Sequence[IndexConfig] = (),
                seed: int = 42) -> list[Task]:
    """Every task of ``eval.tasks``, its data read and validated now, before any training.

    A list instead of a mapping names real mteb tasks (``eval=mteb eval.tasks=[SciFact,STS12]``)."""
    if isinstance(eval_cfg.tasks, list):
        return [MtebTasks.from_names(list(eval_cfg.tasks))]
    limits = Limits(eval_cfg.max_queries, eval_cfg.max_docs, eval_cfg.max_pairs, seed)
    return [build_task(key, spec, data, limits, tuple(indexes)) for key, spec in (eval_cfg.tasks or {}).items()]


def build_task(key: str, spec: TaskConfig, data: DataConfig, limits: Limits,
               indexes: tuple[IndexConfig, ...]) -> Task:
    where = f"eval.tasks.{key}"
    if isinstance(spec, RetrievalTaskConfig):
        root, split = beir_source(spec, data, where)
        return RetrievalTask.load(spec, root, split, limits, indexes)
    if isinstance(spec, RerankingTaskConfig):
        root, split = beir_source(spec, data, where)
        return RerankingTask.load(spec, root, split, limits)
    if isinstance(spec, STSTaskConfig):
        return STSTask.load(spec.name, data_file(spec.path, f"{where}.path"), limits.max_pairs, spec.min_score,
                            spec.max_score)
    if isinstance(spec, ClassificationTaskConfig):
        return ClassificationTask.load(spec, data_file(spec.train, f"{where}.train"),
                                       data_file(spec.test, f"{where}.test"))
    if isinstance(spec, ClusteringTaskConfig):
        if spec.path:
            texts = read_labelled(data_file(spec.path, f"{where}.path"), spec.text_column, spec.label_column)
        else:
            texts = read_line_aligned(data_file(spec.texts, f"{where}.texts"),
                                      data_file(spec.labels, f"{where}.labels"))
        return ClusteringTask.load(spec, texts)
    if isinstance(spec, PairClassificationTaskConfig):
        pairs = read_labelled_pairs(data_file(spec.path, f"{where}.path"), spec.text1_column, spec.text2_column,
                                    spec.label_column)
        return PairClassificationTask(spec.name, pairs)
    raise TypeError(f"{where}: no task type for {type(spec).__name__}")


def beir_source(spec: RetrievalTaskConfig | RerankingTaskConfig, data: DataConfig, where: str) -> tuple[Path, str]:
    """(BEIR folder, split) a retrieval-style task reads: its own ``root``, else the folder ``data=`` names."""
    if spec.root:
        return resolve_root(spec.name, spec.root, key=f"{where}.root"), spec.split or "test"
    if data.format not in BEIR_SOURCES:
        raise EmbedbenchError(f"{where}: a {spec.type} task needs a BEIR folder: give it a root, or a BEIR-format "
                              f"data= (data={data.name} is {data.format})")
    return resolve_root(data.name, data.root, data.url), spec.split or data.eval_split


def check_scorable(tasks: Sequence[Task], model: ScoredModel, model_name: str) -> None:
    """A model without embeddings (BM25) scores only tasks a retriever can score: say so before any work."""
    if model.views is None:
        for task in tasks:
            if task.needs_embeddings:
                raise EmbedbenchError(f"model={model_name} has no embeddings and scores retrieval tasks only; "
                                      f"eval.tasks has {task.name} ({type(task).__name__}): choose eval=beir")


def score_tasks(tasks: Sequence[Task], model: ScoredModel, phases: Phases | None = None) -> dict[str, float]:
    """Every task, every view; each task's texts encoded once for all views (or read from the cache)."""
    phases = phases or Phases()
    metrics = {}
    for task in tasks:
        start = time.perf_counter()
        with phases(f"scoring {task.name}"):
            metrics.update(task.evaluate(model))
        metrics[f"{task.name}/eval_s"] = time.perf_counter() - start
    return metrics
