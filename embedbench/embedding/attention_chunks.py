"""Attention with dropout on CPU, a few texts at a time.

With dropout on its probabilities, CPU scaled-dot-product attention cannot take its fused kernel: it
materialises texts x heads x tokens x tokens probabilities (25M numbers per layer for 32 texts of 256
tokens), draws a mask over them and passes over them several times, forward and backward. Run on four texts
at a time, each of those passes stays in cache; the result is the same computation with a mask drawn per
piece. ``scripts/bench_attention_dropout.py`` measures it against the whole batch.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

CHUNKED_SDPA = "embedbench_chunked_sdpa"
TEXTS_PER_CHUNK = 4


def chunked_sdpa_attention(module, query, key, value, attention_mask, dropout: float = 0.0, **kwargs):
    """transformers' sdpa attention, run ``TEXTS_PER_CHUNK`` texts at a time while dropout is on."""
    texts = query.shape[0]
    if not dropout or query.device.type != "cpu" or texts <= TEXTS_PER_CHUNK or key.shape[0] != texts:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, **kwargs)
    pieces = []
    for start in range(0, texts, TEXTS_PER_CHUNK):
        rows = slice(start, start + TEXTS_PER_CHUNK)
        bias = kwargs.get("position_bias")
        pieces.append(sdpa_attention_forward(
            module, query[rows], key[rows], value[rows], _rows(attention_mask, rows), dropout=dropout,
            **{**kwargs, **({"position_bias": _rows(bias, rows)} if bias is not None else {})})[0])
    return torch.cat(pieces), None


def _rows(tensor: torch.Tensor | None, rows: slice) -> torch.Tensor | None:
    """A per-text tensor's rows; one broadcast over every text stays whole."""
    return tensor if tensor is None or tensor.shape[0] == 1 else tensor[rows]


@contextmanager
def chunked_attention_dropout(network: torch.nn.Module):
    """Within the block, a ``network`` on sdpa attention runs attention with dropout in chunks of texts;
    other attention implementations (eager, flash, a user's) are left as they are."""
    config = getattr(network, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa":
        yield
        return
    AttentionInterface.register(CHUNKED_SDPA, chunked_sdpa_attention)
    AttentionMaskInterface.register(CHUNKED_SDPA, sdpa_mask)
    config._attn_implementation = CHUNKED_SDPA
    try:
        yield
    finally:
        config._attn_implementation = "sdpa"
