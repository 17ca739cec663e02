"""What the jobs score: an encoder's views, embedded through the encoding layer, or BM25."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from embedbench.config import IndexConfig, ModelKind, RunConfig
from embedbench.embedding.cache import open_cache
from embedbench.embedding.embedder import Embedder
from embedbench.embedding.encoder import LayerEncoder, load_encoder, model_options, resolve_device
from embedbench.embedding.prompts import Prompts, Side, resolve_prompts
from embedbench.embedding.views import ViewSet, build_views, with_grid
from embedbench.errors import EmbedbenchError
from embedbench.phases import Phases
from embedbench.retrieval.dense import DenseRetriever
from embedbench.retrieval.lexical import BM25


class EncoderModel:
    """Every view of an encoder: texts embedded once (or read from the cache), views cut from the pooled layers."""

    def __init__(self, embedder: Embedder, views: ViewSet, prompts: Prompts = Prompts()):
        self.embedder, self.views, self.prompts = embedder, views, prompts

    def prompt(self, texts: list[str], side: Side, instruction: str | None = None) -> list[str]:
        return self.prompts.apply(texts, side, instruction)

    def params(self) -> dict[str, str]:
        return self.prompts.params()

    def embed(self, texts: list[str], desc: str) -> dict[int, torch.Tensor]:
        return self.embedder(texts, desc)

    def retriever(self, indexes: Sequence[IndexConfig]) -> DenseRetriever:
        return DenseRetriever(self.embed, self.views, indexes)

    def log_stats(self) -> None:
        self.embedder.log_stats()


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
    return EncoderModel(embedder, views, prompts)


def load_scored_model(cfg: RunConfig, phases: Phases | None = None,
                      shared_by_ranks: bool = False) -> EncoderModel | LexicalModel:
    """The model ``model=`` names, ready to score."""
    if cfg.model.kind == ModelKind.lexical:
        return LexicalModel(BM25(cfg.model.bm25), cfg.model.name)
    encoder = load_encoder(cfg.model.name_or_path, resolve_device(cfg.device), **model_options(cfg.model))
    views = build_views(cfg.model.views, encoder.n_layers, encoder.hidden_size)
    return encoder_model(encoder, views, cfg, phases, shared_by_ranks)
