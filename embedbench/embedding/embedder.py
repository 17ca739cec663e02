"""The one entry to encoding: ``embed(texts, desc) -> {layer: pooled embeddings}``.

Jobs and data preparation (mining, teachers, samplers) all encode through an :class:`Embedder`, so
every caller gets the same precision, runtime, device pool and cache.
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from functools import cached_property

import torch

from embedbench.embedding.cache import EmbeddingCache, model_fingerprint
from embedbench.embedding.encoder import LayerEncoder, StaticEncoder, resolve_batch_size, resolve_encoding
from embedbench.embedding.long import merged, windows
from embedbench.embedding.pool import EncoderPool, resolve_devices
from embedbench.embedding.prompts import Prompted
from embedbench.embedding.ranks import RankShards
from embedbench.embedding.runtimes import UnconvertibleModel
from embedbench.errors import EmbedbenchError
from embedbench.phases import Phases

log = logging.getLogger(__name__)
# texts per cached piece of a long list: minutes of encoding on a CPU, seconds on a GPU, lost at most when stopped
CACHED_PIECE = 16_384


class Embedder:
    """Pooled (un-normalised) float32 embeddings of ``layers`` for any list of texts: one encoding pass, or
    the cache's copy. The runtime (or the pool of device workers) is built at the first miss and reused
    for every later list, so an eval converts or copies the weights once. ``shared_by_ranks``: rank 0 of a
    torchrun eval, whose misses every rank encodes a share of (:mod:`embedbench.embedding.ranks`)."""

    def __init__(self, encoder: LayerEncoder, layers: list[int], encode, cache: EmbeddingCache | None = None,
                 phases: Phases | None = None, shared_by_ranks: bool = False):
        self.encoder, self.layers, self.cache, self.phases = encoder, list(layers), cache, phases
        self.shared_by_ranks = shared_by_ranks
        self.precision, self.backend = resolve_encoding(encode, encoder.device.type)
        self.backend_chosen = str(encode.backend) == "auto"  # by embedbench, which may choose again
        if encode.precision == "fp32" and self.backend == "torch" and encoder.weights_dtype != torch.float32:
            weights = str(encoder.weights_dtype).removeprefix("torch.")
            log.warning("encode.precision=fp32: the weights are %s (model.dtype), so torch computes in %s; "
                        "model.dtype=fp32 encodes in fp32", weights, weights)
        if encode.precision in ("bf16", "int8") and isinstance(encoder, StaticEncoder):
            log.warning("encode.precision=%s: a static embedding model is a lookup and a mean, with no transformer to "
                        "run in %s; it encodes in fp32", encode.precision, encode.precision)
        self.batch_size = resolve_batch_size(encode.batch_size, encoder.device.type)
        self.devices = resolve_devices(encode.devices, encoder.device.type)
        self._engine = None

    @cached_property
    def fingerprint(self) -> str:
        """What the embeddings depend on: weights, pooling head, max length, precision and runtime."""
        return model_fingerprint(self.encoder, self.precision, self.backend)

    def __call__(self, texts: list[str], desc: str) -> dict[int, torch.Tensor]:
        """``desc`` starts with what is encoded (``scifact: 300 queries + ...``): the phase's name. With the cache
        on, a list longer than :data:`CACHED_PIECE` is encoded and kept piece by piece, so an eval stopped in the
        middle of a large collection encodes only the pieces it had not finished when run again."""
        with self.phases(f"encoding {desc.split(':')[0]}") if self.phases else nullcontext():
            if not self.cache or len(texts) <= CACHED_PIECE:
                return self._cached(texts, desc)
            starts = range(0, len(texts), CACHED_PIECE)
            pooled = {}
            for piece, start in enumerate(starts, 1):  # filled piece by piece: no second copy of the whole list
                part = self._cached(texts[start:start + CACHED_PIECE], f"{desc} (piece {piece} of {len(starts)})")
                for layer, rows in part.items():
                    pooled.setdefault(layer, torch.empty(len(texts), rows.shape[1]))[start:start + len(rows)] = rows
            return pooled

    def _cached(self, texts: list[str], desc: str) -> dict[int, torch.Tensor]:
        pooled = self.cache.get(self.fingerprint, texts, self.layers) if self.cache else None
        if pooled is None and self.cache and self._engine is None:
            fingerprint = self.fingerprint
            self.engine()  # may fall back from OpenVINO to torch, whose embeddings are kept under another key
            if self.fingerprint != fingerprint:
                pooled = self.cache.get(self.fingerprint, texts, self.layers)
        if pooled is None:
            pooled = self._encode(texts, desc)
            if self.cache:
                self.cache.put(self.fingerprint, texts, pooled)
        return pooled

    def _encode(self, texts: list[str], desc: str) -> dict[int, torch.Tensor]:
        if self.encoder.options.get("long") == "chunk":  # every window in one pass, then each text's combined
            if any(isinstance(text, Prompted) for text in texts):
                raise EmbedbenchError("model.long=chunk: the model's pooling leaves prompt tokens out "
                                      "(include_prompt=false) and only a text's first window starts with its "
                                      "prompt; use model.long=truncate or an extended window")
            tokenizer = self.encoder.model.tokenizer
            size = int(self.encoder.model.max_seq_length) - tokenizer.num_special_tokens_to_add(pair=False)
            pieces, owners = windows(tokenizer, texts, size)
            pooled = self._encode_texts(pieces, f"{desc} ({len(pieces)} windows)")
            return merged(pooled, owners, len(texts), self.encoder.options.get("long_pooling", "mean"))
        return self._encode_texts(texts, desc)

    def runtime(self):
        """The encoder's runtime at this embedder's settings; an OpenVINO conversion is kept in the cache. Where
        the backend was left to ``auto`` and OpenVINO cannot convert the model, torch's bf16 copy, as warned."""
        try:
            return self.encoder.runtime(self.precision, self.backend, cache=self.cache,
                                        weights_key=self.fingerprint if self.cache else "")
        except UnconvertibleModel as exc:
            if not (self.backend_chosen and self.precision == "bf16"):
                raise
            log.warning("encode.backend=auto: %s; encoding with torch's bf16 copy instead", exc.what)
            self.backend = "torch"
            self.__dict__.pop("fingerprint", None)  # embeddings are cached under what computed them
            return self.encoder.runtime(self.precision, self.backend)

    def engine(self):
        """What encodes, built on first use: the ranks' shards, a pool of devices, or one runtime."""
        if self._engine is None:
            if self.shared_by_ranks:
                self._engine = RankShards(self.encoder, self.runtime(), self.batch_size)
            elif len(self.devices) > 1:
                self._engine = EncoderPool(self.encoder, self.devices, self.precision, self.backend, self.batch_size)
            else:
                self._engine = self.runtime()
        return self._engine

    def _encode_texts(self, texts: list[str], desc: str) -> dict[int, torch.Tensor]:
        if self.shared_by_ranks or len(self.devices) > 1:
            return self.engine().encode(texts, self.layers, desc)
        return self.encoder.encode(texts, self.layers, self.batch_size, desc=desc, runtime=self.engine())

    def log_stats(self) -> None:
        if self.cache:
            log.info("embedding cache: %d hits, %d misses", self.cache.hits, self.cache.misses)
