"""The task interface: what every evaluation task declares, and the model it scores.

A task reads and checks its data when it is built (before any training), never encodes on its own,
and scores every view of the model from one encoding pass: it asks ``model.embed`` for the pooled
layers of its texts (or ``model.retriever`` for rankings) and cuts each view from them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch

from embedbench.config import IndexConfig
from embedbench.embedding.prompts import Side
from embedbench.embedding.views import ViewSet
from embedbench.retrieval.base import Retriever


class ScoredModel(Protocol):
    """What tasks score: an encoder's views, or a retriever without embeddings (BM25: ``views`` is None)."""

    views: ViewSet | None

    def prompt(self, texts: list[str], side: Side, instruction: str | None = None) -> list[str]:
        """The texts as the model is to see them on that side: its prompt (or the instruction) before each."""
        ...

    def embed(self, texts: list[str], desc: str) -> dict[int, torch.Tensor]:
        """Pooled (un-normalised) embeddings of every layer the views read, rows in input order."""
        ...

    def retriever(self, indexes: Sequence[IndexConfig]) -> Retriever: ...


class Task(Protocol):
    name: str
    needs_embeddings: bool  # False: any retriever can score it (BM25 too)
    indexes: tuple[IndexConfig, ...]  # searched beside exact search, per view
    sliced: str | None  # what part of the data is scored ("10 of 300 queries, ..."); None: all of it

    @property
    def main_scores(self) -> dict[str, str]:
        """Metric prefix -> main metric, for each result the task reports (the mteb adapter reports several)."""
        ...

    def evaluate(self, model: ScoredModel) -> dict[str, float]:
        """``<name>/<metric><view suffix>`` for every view of the model."""
        ...


@dataclass
class TaskBase:
    """Defaults for tasks that report one main metric under their own name and need embeddings."""

    name: str
    instruction: str | None = field(default=None, kw_only=True)  # for models with a prompt template
    main_metric: ClassVar[str] = ""
    needs_embeddings: ClassVar[bool] = True
    sliced: ClassVar[str | None] = None  # set on the instance when eval.max_* cut the data

    @property
    def indexes(self) -> tuple[IndexConfig, ...]:
        return ()

    @property
    def main_scores(self) -> dict[str, str]:
        return {self.name: self.main_metric}


@dataclass(frozen=True)
class Limits:
    """A slice of a task's data (``eval.max_*``), drawn with ``seed``; None: all of it."""

    max_queries: int | None = None
    max_docs: int | None = None
    max_pairs: int | None = None
    seed: int = 42


def slice_note(counts: dict[str, tuple[int, int]]) -> str | None:
    """``{"queries": (kept, of)}`` as "10 of 300 queries", or None when everything was kept."""
    cut = [f"{kept:,} of {total:,} {what}" for what, (kept, total) in counts.items() if kept < total]
    return ", ".join(cut) or None
