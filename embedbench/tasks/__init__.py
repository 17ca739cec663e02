"""Evaluation task types. Each loads and checks its data up front, then scores every view.

A task gets ``embed(texts, desc) -> {layer: pooled tensor}`` and never encodes on its own,
so one encoding pass serves every view (and, later, a cache can serve every run).
"""
from __future__ import annotations

from omegaconf import ListConfig

from embedbench.errors import EmbedbenchError
from embedbench.tasks.classification import ClassificationTask
from embedbench.tasks.clustering import ClusteringTask
from embedbench.tasks.mteb_tasks import MtebTasks
from embedbench.tasks.pair_classification import PairClassificationTask
from embedbench.tasks.reranking import RerankingTask
from embedbench.tasks.retrieval import RetrievalTask
from embedbench.tasks.sts import STSTask

TASK_TYPES = {"retrieval": RetrievalTask, "sts": STSTask, "classification": ClassificationTask,
              "clustering": ClusteringTask, "pair_classification": PairClassificationTask,
              "reranking": RerankingTask}


def load_tasks(cfg) -> list:
    """Every task of ``cfg.eval.tasks``, its data read and validated now, before any training.

    A list instead of a mapping names real mteb tasks (``eval=mteb eval.tasks=[SciFact,STS12]``)."""
    if isinstance(cfg.eval.tasks, ListConfig):
        return [MtebTasks.from_names(list(cfg.eval.tasks))]
    tasks = []
    for key, task_cfg in cfg.eval.tasks.items():
        kind = task_cfg.get("type")
        if kind not in TASK_TYPES:
            raise EmbedbenchError(f"eval.tasks.{key}.type={kind}: choose one of {sorted(TASK_TYPES)}")
        tasks.append(TASK_TYPES[kind].from_config(task_cfg.get("name") or key, task_cfg, cfg))
    return tasks
