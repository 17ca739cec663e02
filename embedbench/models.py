"""What the jobs score: an encoder's views, embedded through the encoding layer, or BM25."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from embedbench.config import IndexConfig, ModelKind, RunConfig
from embedbench.embedding.cache import open_cache
from embedbench.embedding.embedder import Embedder
from embedbench.embedding.encoder import LayerEncoder, load_encoder, model_options, resolve_device
from embedbench.embedding.prompts import Prompts, Side, resolve_prompts
from embedbench.embedding.views import ViewSet, with_grid
from embedbench.errors import EmbedbenchError
from embedbench.phases import Phases
from embedbench.retrieval.dense import DenseRetriever

if TYPE_CHECKING:  # bm25s is imported by the runs that use BM25 only (embedbench.retrieval.lexical says why)
    from embedbench.retrieval.lexical import BM25


class EncoderModel:
    """Every view of an encoder: texts embedded once (or read from the cache), views cut from the pooled layers.
    ``reference``: a reference model's embedder, whose documents the retriever also searches with this
    model's queries (``eval.compat``); ``shard_docs``: retrieval encodes and searches documents that many at a
    time (``eval.shard_docs``)."""

    def __init__(self, embedder: Embedder, views: ViewSet, prompts: Prompts = Prompts(),
                 reference: Embedder | None = None, shard_docs: int | None = None):
        self.embedder, self.views, self.prompts, self.reference = embedder, views, prompts, reference
        self.shard_docs = shard_docs

    def prompt(self, texts: list[str], side: Side, instruction: str | None = None) -> list[str]:
        return self.prompts.apply(texts, side, instruction)

    def params(self) -> dict[str, str]:
        """What the model saw and scored by, also where the config said "the model's own"."""
        return {**self.prompts.params(), "similarity": self.views.similarity}

    def embed(self, texts: list[str], desc: str) -> dict[int, torch.Tensor]:
        return self.embedder(texts, desc)

    def retriever(self, indexes: Sequence[IndexConfig]) -> DenseRetriever:
        return DenseRetriever(self.embed, self.views, indexes, self.reference, self.shard_docs)

    def log_stats(self) -> None:
        self.embedder.log_stats()
        if self.reference:
            self.reference.log_stats()


class LexicalModel:
    """BM25: rankings without embeddings, so only tasks a retriever can score."""

    views = None

    def __init__(self, bm25: BM25, name: str):
        self.bm25, self.name = bm25, name

    def prompt(self, texts: list[str], side: Side, instruction: str | None = None) -> list[str]:
        return list(texts)  # prompts are for encoders; BM25 scores the texts as they are

    def params(self) -> dict[str, str]:
        return {}

    def embed(self, texts: list[str], desc: str) -> dict[int, torch.Tensor]:
        raise EmbedbenchError(f"model={self.name} has no embeddings; it scores retrieval tasks only")

    def retriever(self, indexes: Sequence[IndexConfig]) -> BM25:
        return self.bm25

    def log_stats(self) -> None:
        pass


def encoder_model(encoder: LayerEncoder, views: ViewSet, cfg: RunConfig, phases: Phases | None = None,
                  shared_by_ranks: bool = False) -> EncoderModel:
    """``encoder``'s views plus ``eval.grid``, embedded as ``encode`` says, through the cache of ``eval.cache``,
    with the prompts ``model.prompts`` resolves to."""
    views = with_grid(views, cfg.eval.grid)
    prompts = resolve_prompts(encoder.model, cfg.model.prompts, cfg.model.prompt_template)
    embedder = Embedder(encoder, views.layers, cfg.encode, open_cache(cfg.eval), phases, shared_by_ranks)
    reference = None
    if cfg.eval.compat.reference:  # not shared by ranks: they serve the scored model alone
        reference = Embedder(reference_encoder(cfg.eval.compat.reference, encoder), views.layers, cfg.encode,
                             open_cache(cfg.eval), phases)
    return EncoderModel(embedder, views, prompts, reference, cfg.eval.shard_docs)


def reference_encoder(name: str, encoder: LayerEncoder, key: str = "eval.compat.reference") -> LayerEncoder:
    """A reference model (``key``), loaded as saved; its views must be ``encoder``'s (same depth and width)."""
    reference = load_encoder(name, str(encoder.device))
    if (reference.n_layers, reference.hidden_size) != (encoder.n_layers, encoder.hidden_size):
        raise EmbedbenchError(f"{key}={name}: {reference.n_layers} layers x {reference.hidden_size} "
                              f"dims, but the model has {encoder.n_layers} x {encoder.hidden_size}; "
                              "compatibility compares the same views of both")
    return reference


def load_scored_model(cfg: RunConfig, phases: Phases | None = None,
                      shared_by_ranks: bool = False) -> EncoderModel | LexicalModel:
    """The model ``model=`` names, ready to score."""
    if cfg.model.kind == ModelKind.lexical:
        if cfg.eval.compat.reference:
            raise EmbedbenchError(f"eval.compat.reference: model={cfg.model.name} has no embeddings to search "
                                  "another model's index with")
        from embedbench.retrieval.lexical import BM25

        return LexicalModel(BM25(cfg.model.bm25), cfg.model.name)
    encoder = load_encoder(cfg.model.name_or_path, resolve_device(cfg.device), **model_options(cfg.model))
    views = encoder.views(cfg.model.views)
    return encoder_model(encoder, views, cfg, phases, shared_by_ranks)
