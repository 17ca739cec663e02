"""Attention with dropout on CPU, a few texts at a time, its masks drawn on every core.

With dropout on its probabilities, CPU scaled-dot-product attention cannot take its fused kernel: it
materialises texts x heads x tokens x tokens probabilities (25M numbers per layer for 32 texts of 256
tokens), draws a mask over them on one core (torch draws CPU dropout masks serially) and passes over them
several times, forward and backward. Here the same attention runs on four texts at a time, so each pass
stays in cache. In bf16 (autocast) each piece is computed by :func:`attend`, its mask drawn in parallel:
eight slices, each from its own generator seeded from the global one, so a seeded run draws the same masks
whatever the number of threads. In fp32 sdpa's own path was the faster per piece, and is kept.
``scripts/bench_attention_dropout.py`` measures both against the whole batch.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

CHUNKED_SDPA = "embedbench_chunked_sdpa"
TEXTS_PER_CHUNK = 4
MASK_SLICES = 8  # fixed, so the masks do not depend on the thread count
PLAIN_ONLY = ("position_bias", "softcap", "sinks")  # attention variants left to transformers' sdpa


def chunked_sdpa_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                           is_causal=None, **kwargs):
    """transformers' sdpa attention; while dropout is on (on CPU), four texts at a time."""
    texts, tokens = query.shape[0], query.shape[2]
    if (not dropout or query.device.type != "cpu" or key.shape[0] != texts or key.shape[2] != tokens
            or any(kwargs.get(name) is not None for name in PLAIN_ONLY)):
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    causal = causal and attention_mask is None and tokens > 1  # as transformers' sdpa decides it
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    full_precision = query.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    pieces = []
    for start in range(0, texts, TEXTS_PER_CHUNK):
        rows = slice(start, start + TEXTS_PER_CHUNK)
        mask = attention_mask if attention_mask is None or attention_mask.shape[0] == 1 else attention_mask[rows]
        if full_precision:  # in fp32 sdpa's own unfused path is the faster (measured), in bf16 attend
            pieces.append(sdpa_attention_forward(module, query[rows], key[rows], value[rows], mask, dropout=dropout,
                                                 scaling=scaling, is_causal=is_causal, **kwargs)[0])
        else:
            pieces.append(attend(query[rows], key[rows], value[rows], mask, scale, causal, dropout).transpose(1, 2))
    return torch.cat(pieces).contiguous(), None


def attend(query, key, value, mask, scale: float, causal: bool, dropout: float) -> torch.Tensor:
    """Attention (texts, heads, tokens, head dim) with dropout ``dropout`` on its probabilities. ``mask``:
    boolean (True attends) or additive, broadcast over heads; key/value heads may be fewer than query heads."""
    if key.shape[1] != query.shape[1]:  # grouped key/value heads, repeated as transformers' repeat_kv does
        groups = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if causal:
        tokens = query.shape[2]
        mask = torch.ones(tokens, tokens, dtype=torch.bool, device=query.device).tril()
    if mask is not None and mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)  # a row with no key stays finite
    elif mask is not None:
        scores = scores + mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    if dropout:
        probs = probs * keep_mask(probs.shape, dropout)
    return torch.matmul(probs.to(value.dtype), value)


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """1 / (1 - p) with probability 1 - p, else 0, as dropout keeps; drawn in ``MASK_SLICES`` slices at once."""
    mask = torch.empty(shape)
    seeds = torch.randint(0, 2**62, (MASK_SLICES,)).tolist()

    def draw(part_and_seed):
        part, seed = part_and_seed
        part.bernoulli_(1 - p, generator=torch.Generator().manual_seed(seed)).mul_(1 / (1 - p))

    list(_pool().map(draw, zip(mask.view(-1).chunk(MASK_SLICES), seeds)))
    return mask


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(1, torch.get_num_threads()), thread_name_prefix="dropout-mask")


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
