"""Dropout while training on CPU at the pace of the rest of a step.

torch draws a CPU dropout mask one Bernoulli sample at a time on one core, and with dropout on the attention
probabilities scaled-dot-product attention leaves its fused kernel for a path that upcasts to fp32 and
materialises, masks and passes over the whole probability matrix several times. Inside :func:`drawn_fast`,
every ``nn.Dropout`` of a model cuts its mask from 32-bit halves of random 64-bit words that numpy's PCG64
draws on several cores (the drop rate is p to within 2^-32), and the attention of a model run through sdpa
computes, while it trains with dropout, what sdpa computes with such a mask, in the model's dtype (fp16
excepted). The words' generators are seeded from torch's: a seed gives the same masks, and a checkpoint's
saved RNG state the same masks again.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache

import numpy
import torch
from torch import nn
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

from embedbench.embedding.attention import sdpa_replaced

DRAWN_FAST = "embedbench_sdpa_drawn_dropout"  # the attention implementation's name in transformers' registry
PIECES = 4  # random words are drawn in this many pieces at once, whatever the thread count: a seed's masks
# are the same on every machine


@cache
def _drawers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(PIECES, thread_name_prefix="embedbench-dropout")


def drop_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """True with probability p, independently at each place of ``shape``: a comparison of each 32-bit half of
    random 64-bit words. They come in :data:`PIECES` pieces drawn side by side, each from numpy's PCG64 seeded
    from torch's generator, which draws them in less time than torch's own CPU generator
    (``scripts/bench_attention_dropout.py`` times both)."""
    mask = torch.empty(shape.numel(), dtype=torch.bool)
    threshold = round(p * 2**32) - 2**31
    seeds = torch.randint(2**62, (PIECES,)).tolist()

    def draw(piece: torch.Tensor, seed: int) -> None:
        words = numpy.random.PCG64(seed).random_raw((piece.numel() + 1) // 2)
        # numpy's comparison, single-threaded: torch's would start a team of intra-op threads in each drawer
        numpy.less(words.view(numpy.int32)[:piece.numel()], threshold, out=piece.numpy())

    list(_drawers().map(draw, mask.chunk(PIECES), seeds))
    return mask.view(shape)


def dropped(x: torch.Tensor, p: float) -> torch.Tensor:
    """``x`` with each entry zeroed with probability p and the rest scaled by 1 / (1 - p), as ``F.dropout``."""
    return torch.where(drop_mask(x.shape, p), 0, x) * (1 / (1 - p))  # as the attention's drop: no copy first


class DrawnDropout(nn.Dropout):
    """``nn.Dropout`` with its mask from :func:`drop_mask`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropped(x, self.p) if self.training and 0 < self.p < 1 else super().forward(x)


def masked_scores(scores: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Attention ``scores``, to go through softmax, under a mask as transformers' mask functions make them: a
    boolean one keeps its True places, a float one is added. A boolean mask's fill is written into ``scores``
    itself (callers hand a fresh product, which nothing keeps for backward) and kept out of autograd: softmax
    gives the filled places exactly 0, so its backward already sends them no gradient. Two passes over the
    tokens x tokens matrix saved, a copy and the fill's backward."""
    if attention_mask is None:
        return scores
    if attention_mask.dtype == torch.bool:
        with torch.no_grad():
            return scores.masked_fill_(~attention_mask, torch.finfo(scores.dtype).min)
    return scores + attention_mask[..., :scores.shape[-1]]


def drawn_dropout_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                            scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """transformers' sdpa attention; while the module trains with dropout, the same attention computed with
    the probabilities' mask from :func:`drop_mask`. CPU tensors only."""
    # fp16 stays with sdpa, whose math upcasts it: CPU fp16 matmuls run several times slower than fp32's
    if not (module.training and 0 < dropout < 1) or query.dtype == torch.float16 \
            or kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    if attention_mask is None and causal and query.shape[2] > 1:  # as sdpa's is_causal: aligned top-left
        attention_mask = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool, device=query.device).tril()
    # the scaling on the queries, the drop as one where: no pass over tokens x tokens that the math does not need
    scaled = query * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    probabilities = torch.softmax(masked_scores(torch.matmul(scaled, key.transpose(2, 3)), attention_mask), dim=-1)
    probabilities = torch.where(drop_mask(probabilities.shape, dropout), 0, probabilities)
    # dropout's 1 / (1 - p) on the values: a head's few columns rather than the tokens x tokens probabilities
    return torch.matmul(probabilities, value * (1 / (1 - dropout))).transpose(1, 2).contiguous(), None


@contextmanager
def drawn_fast(model: nn.Module):
    """Within the block, ``model``'s dropout as this module draws it: its ``nn.Dropout`` modules swapped for
    :class:`DrawnDropout`, and its transformers models that run sdpa through transformers' attention registry
    given :func:`drawn_dropout_attention`. Both are put back on leaving, so the model saved and scored after
    training is the one loaded."""
    swapped = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if type(child) is nn.Dropout]
    try:
        for parent, name, child in swapped:
            setattr(parent, name, DrawnDropout(child.p).train(child.training))
        with sdpa_replaced(model, DRAWN_FAST, drawn_dropout_attention):
            yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
