"""Real mteb tasks by name (``embedbench eval eval=mteb eval.tasks=[STSBenchmark,SciFact]``).

mteb downloads each task's data from the Hugging Face Hub, so this needs a machine that is online.
Every view becomes one mteb encoder (a ``ViewEncoder``); they share one memo of pooled layer
outputs, so the texts of a task are encoded once whatever the number of views. The side mteb names
(query or document; none for symmetric tasks) picks the model's prompt.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from embedbench.embedding.prompts import DOCUMENT, QUERY, SYMMETRIC, SYMMETRIC_TYPES
from embedbench.embedding.views import View, ViewSet
from embedbench.errors import EmbedbenchError
from embedbench.tasks.base import ScoredModel


def _mteb():
    try:
        import mteb
    except ImportError:
        raise EmbedbenchError("eval=mteb needs the mteb package: pip install mteb") from None
    return mteb


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE or os.environ.get("HF_DATASETS_OFFLINE") == "1")


def view_encoder(embed, views: ViewSet, view: View, label: str):
    """One view of the model as an mteb encoder (the model's similarity; its prompt for mteb's side)."""
    from mteb.models import ModelMeta
    from mteb.models.abs_encoder import AbsEncoder
    from mteb.models.model_meta import ScoringFunction

    class ViewEncoder(AbsEncoder):
        mteb_model_meta = ModelMeta.create_empty(
            overwrites={"name": f"embedbench/{label}", "revision": "local", "embed_dim": view.dim,
                        "similarity_fn_name": ScoringFunction(views.similarity), "framework": ["PyTorch"]})

        def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs) -> np.ndarray:
            texts = [text for batch in inputs for text in batch["text"]]
            if prompt_type is None:  # a symmetric task: its type's own prompt where the model has one
                side = task_metadata.type if task_metadata.type in SYMMETRIC_TYPES else SYMMETRIC
            else:  # a retrieval or reranking side: its type's own prompt for it where the model has one
                side = f"{task_metadata.type}-{DOCUMENT if prompt_type.value == DOCUMENT else QUERY}"
            pooled = embed(texts, side, f"{task_metadata.name}/{hf_split}: {len(texts)} texts")
            return views.features(pooled, view).numpy()

    return ViewEncoder()


@dataclass
class MtebTasks:
    """mteb tasks (names, or task objects) scored for every view; metrics ``<Task>/<main score>``."""

    tasks: list
    name: str = "mteb"
    _memo: dict = field(default_factory=dict, repr=False)
    needs_embeddings = True
    indexes = ()
    sliced = None

    @property
    def main_scores(self) -> dict[str, str]:
        return {task.metadata.name: "main_score" for task in self.tasks}

    @classmethod
    def from_names(cls, names: list[str]) -> MtebTasks:
        mteb = _mteb()
        if hub_offline():
            raise EmbedbenchError(f"eval=mteb: tasks {list(names)} load their data from the Hugging Face Hub, and "
                                  "this machine is offline (HF_HUB_OFFLINE=1); run where the Hub is reachable, or "
                                  "use local data with eval=mteb_lite")
        try:
            return cls(list(mteb.get_tasks(tasks=list(names))))
        except (KeyError, ValueError) as err:
            raise EmbedbenchError(f"eval.tasks={list(names)}: {err}") from None

    def evaluate(self, model: ScoredModel) -> dict[str, float]:
        mteb = _mteb()

        def memo_embed(texts, side, desc):  # one encoding per text list and side, shared by every view
            texts = model.prompt(texts, side)
            key = hash(tuple(texts))
            if key not in self._memo:
                self._memo[key] = model.embed(texts, desc)
            return self._memo[key]

        out = {}
        for view in model.views.views:
            suffix = model.views.name(view)
            encoder = view_encoder(memo_embed, model.views, view, f"view{suffix.replace('/', '_') or '_full'}")
            results = mteb.evaluate(encoder, self.tasks, cache=None, show_progress_bar=False)
            for result in results.task_results:
                out[f"{result.task_name}/main_score{suffix}"] = float(result.get_score())
        self._memo.clear()
        return out
