"""Evaluation task types (one per module, each implementing :class:`embedbench.tasks.base.Task`), built from
their typed configs with explicit data folders, splits, limits and indexes, and scored in one place."""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from embedbench.config import (
    ClassificationTaskConfig,
    ClusteringTaskConfig,
    CollectionConfig,
    DataConfig,
    DataFormat,
    EvalConfig,
    IndexConfig,
    LongSyntheticTaskConfig,
    PairClassificationTaskConfig,
    RerankingTaskConfig,
    RetrievalTaskConfig,
    STSTaskConfig,
    TableTaskConfig,
    TaskConfig,
)
from embedbench.data.beir import load_collection, resolve_root
from embedbench.data.files import data_file
from embedbench.data.hub_tables import HubTable
from embedbench.data.longembed import haystack_sentences, synthetic_task
from embedbench.data.tables import Layout, read_labelled, read_labelled_pairs, read_line_aligned, read_scored_pairs
from embedbench.errors import EmbedbenchError
from embedbench.phases import Phases
from embedbench.tasks.base import Limits, ScoredModel, Task
from embedbench.tasks.classification import ClassificationTask
from embedbench.tasks.clustering import ClusteringTask
from embedbench.tasks.long_synthetic import LengthSweep
from embedbench.tasks.mteb_tasks import MtebTasks
from embedbench.tasks.pair_classification import PairClassificationTask
from embedbench.tasks.reranking import RerankingTask
from embedbench.tasks.retrieval import RetrievalTask, SubsetAverage, checked_metrics, writing_runs
from embedbench.tasks.sts import STSTask

# the unlabeled formats read a BEIR folder's corpus, whose test split the tasks score
BEIR_SOURCES = (DataFormat.beir, DataFormat.mirror, DataFormat.cropping, DataFormat.text)


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
        return retrieval_task(spec, data, where, limits, indexes)
    if isinstance(spec, LongSyntheticTaskConfig):
        return long_synthetic_task(spec, data, limits)
    if isinstance(spec, RerankingTaskConfig):
        if (spec.path is None and spec.hub is None) == (spec.candidates is None):
            raise EmbedbenchError(f"{where}: give candidates (a BEIR folder's candidate lists) or path (mteb's "
                                  "reranking samples), one of them")
        if spec.hub:  # path names the split, which mteb's conversion names the queries by
            samples = HubTable(spec.hub, spec.hub_config, spec.path or "test", spec.revision, f"{where}.hub")
            return RerankingTask.from_samples(spec, samples, samples.split, limits)
        if spec.path:
            return RerankingTask.from_samples(spec, data_file(spec.path, f"{where}.path"), spec.split or "test",
                                              limits)
        source, key = collection_of(spec, data, where)
        root = resolve_root(source.name, source.root, source.url, source.md5, f"{key}.root")
        return RerankingTask.load(spec, root, spec.split or source.eval_split, limits)
    if isinstance(spec, STSTaskConfig):
        pairs = read_scored_pairs(table_file(spec, "path", where), spec.text1_column, spec.text2_column,
                                  spec.score_column, layout(spec), spec.min_score, spec.max_score)
        return STSTask.load(spec.name, pairs, limits.max_pairs, spec.instruction)
    if isinstance(spec, ClassificationTaskConfig):
        sources = tuple(table_file(spec, split, where) for split in ("train", "test"))
        train, test = (read_labelled(source, spec.text_column, spec.label_column, layout(spec)) for source in sources)
        return ClassificationTask.load(spec, train, test, (str(sources[0]), str(sources[1])))
    if isinstance(spec, ClusteringTaskConfig):
        if spec.path:
            texts = read_labelled(table_file(spec, "path", where), spec.text_column, spec.label_column, layout(spec))
        elif spec.hub:
            raise EmbedbenchError(f"{where}: with hub, path names the split to read (texts and labels are files)")
        else:
            texts = read_line_aligned(table_file(spec, "texts", where), table_file(spec, "labels", where))
        return ClusteringTask.load(spec, texts)
    if isinstance(spec, PairClassificationTaskConfig):
        pairs = read_labelled_pairs(table_file(spec, "path", where), spec.text1_column, spec.text2_column,
                                    spec.label_column, layout(spec))
        return PairClassificationTask(spec.name, pairs, instruction=spec.instruction)
    raise TypeError(f"{where}: no task type for {type(spec).__name__}")


def table_file(spec: TableTaskConfig, key: str, where: str) -> Path | HubTable:
    """The task's file ``key`` (path, train, ...): found locally, else fetched from its ``download`` source; with
    ``hub``, the split of that dataset which ``key`` names."""
    if spec.hub:
        return HubTable(spec.hub, spec.hub_config, getattr(spec, key), spec.revision, f"{where}.hub")
    return data_file(getattr(spec, key), f"{where}.{key}", spec.download.get(key))


def layout(spec: TableTaskConfig) -> Layout:
    return Layout(spec.format.value if spec.format else None, spec.header)


def collection_of(spec: RetrievalTaskConfig | RerankingTaskConfig, data: DataConfig,
                  where: str) -> tuple[CollectionConfig, str]:
    """The collection a retrieval-style task reads (its own ``data`` or ``root``, else the one ``data=``
    names) and the config key errors name it by."""
    if getattr(spec, "data", None) is not None:
        return spec.data, f"{where}.data"
    if spec.root:
        return CollectionConfig(name=spec.name, root=spec.root), where
    if data.format not in BEIR_SOURCES:
        raise EmbedbenchError(f"{where}: a {spec.type} task needs a BEIR folder: give it a root, or a BEIR-format "
                              f"data= (data={data.name} is {data.format})")
    return data, "data"


def retrieval_task(spec: RetrievalTaskConfig, data: DataConfig, where: str, limits: Limits,
                   indexes: tuple[IndexConfig, ...]) -> Task:
    """The task over the collection; one over each subset, and their average, for a collection of subsets."""
    source, key = collection_of(spec, data, where)
    split = spec.split or source.eval_split
    ignore = source.ignore_identical_ids if spec.ignore_identical_ids is None else spec.ignore_identical_ids
    metrics = checked_metrics(spec.metrics)
    if not source.subsets:
        return RetrievalTask.load(spec.name, load_collection(source, split, key), metrics, limits, indexes, ignore,
                                  spec.instruction)
    root = resolve_root(source.name, source.root, source.url, source.md5, f"{key}.root")
    return SubsetAverage(spec.name, [
        RetrievalTask.load(f"{spec.name}-{subset}", load_collection(source, split, key, root / subset), metrics,
                           limits, indexes, ignore, spec.instruction) for subset in source.subsets])


def long_synthetic_task(spec: LongSyntheticTaskConfig, data: DataConfig, limits: Limits) -> LengthSweep:
    from embedbench.data.unlabeled import unlabeled_texts  # imports `datasets`: only where a haystack is read

    haystack = haystack_sentences(unlabeled_texts(data)) if "needle" in spec.kinds else None
    metrics = checked_metrics(spec.metrics)
    parts, lengths = [], {}
    for kind in spec.kinds:
        for tokens in spec.lengths:
            dataset = synthetic_task(kind, tokens, spec.docs, spec.queries, limits.seed, haystack)
            parts.append(RetrievalTask.load(dataset.name, dataset, metrics, limits, instruction=spec.instruction))
            lengths.setdefault(kind, {})[tokens] = dataset.name
    return LengthSweep(spec.name, parts, lengths)


def check_scorable(tasks: Sequence[Task], model: ScoredModel, model_name: str) -> None:
    """A model without embeddings (BM25) scores only tasks a retriever can score: say so before any work."""
    if model.views is None:
        for task in tasks:
            if task.needs_embeddings:
                raise EmbedbenchError(f"model={model_name} has no embeddings and scores retrieval tasks only; "
                                      f"eval.tasks has {task.name} ({type(task).__name__}): choose eval=beir")


def score_tasks(tasks: Sequence[Task], model: ScoredModel, phases: Phases | None = None,
                runs: Path | None = None) -> dict[str, float]:
    """Every task, every view; each task's texts encoded once for all views (or read from the cache).
    ``runs``: a folder for the retrieval rankings as TREC run files."""
    phases = phases or Phases()
    metrics = {}
    for task in tasks:
        task = writing_runs(task, runs) if runs else task
        start = time.perf_counter()
        with phases(f"scoring {task.name}"):
            metrics.update(task.evaluate(model))
        metrics[f"{task.name}/eval_s"] = time.perf_counter() - start
    return metrics
