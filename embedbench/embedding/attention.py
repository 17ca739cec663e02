"""Attention put in place of sdpa for a while, through transformers' attention and mask registries.

:func:`sdpa_replaced` swaps an implementation in and puts sdpa back. :func:`mask_without_empty_rows` is the mask a
model is traced with for OpenVINO: sdpa's, except that a query whose mask allows no key attends to every key.
Such a query is always a padding position (every real token attends to itself): one far from the text in a
sliding-window layer (ModernBERT), or the left padding of a causal model. Its output is never pooled, but
OpenVINO's attention makes it NaN (torch's gives zeros), and the next layer's values spread the NaN to every token.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NO_EMPTY_ROWS = "embedbench_sdpa_no_empty_rows"  # sdpa with mask_without_empty_rows, in transformers' registries


@contextmanager
def sdpa_replaced(model: nn.Module, name: str, attention: Callable, mask: Callable = sdpa_mask) -> Iterator[None]:
    """Within the block, every transformers model inside ``model`` that runs sdpa through transformers' attention
    registry runs ``attention`` with masks made by ``mask`` (both registered as ``name``); sdpa again on leaving."""
    networks = [module for module in model.modules() if isinstance(module, PreTrainedModel)
                and module._supports_attention_backend and module.config._attn_implementation == "sdpa"]
    AttentionInterface.register(name, attention)
    AttentionMaskInterface.register(name, mask)
    try:
        for network in networks:
            network.config._attn_implementation = name
        yield
    finally:
        for network in networks:
            network.config._attn_implementation = "sdpa"


def mask_without_empty_rows(*args, **kwargs) -> torch.Tensor | None:
    """sdpa's boolean mask, [batch, 1, queries, keys], with each row that allows no key allowing every key: made
    once per forward pass, rather than mended in each layer's attention. Made by broadcasting the mask function
    over index tensors, never by vmap, which transformers picks for models that add mask functions of their own
    (EmbeddingGemma's bidirectional window) and which tracing cannot follow; such functions compare indices, as
    transformers' own do, and broadcast alike."""
    mask = sdpa_mask(*args, **{**kwargs, "use_vmap": False})
    return mask if mask is None else mask | ~mask.any(-1, keepdim=True)
