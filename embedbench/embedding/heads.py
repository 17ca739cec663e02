"""What a model setting changes in a loaded sentence-transformers model: its pooling head, the causal mask of
a decoder-only transformer, the tokenizer's padding side."""
from __future__ import annotations

import torch

from embedbench.errors import EmbedbenchError

ST_POOLING = {"mean": "mean", "cls": "cls", "max": "max", "last_token": "lasttoken"}


def set_pooling(model, pooling: str) -> None:
    """Replace the model's pooling module by sentence-transformers' ``pooling`` one (saved with the model, so
    ``SentenceTransformer(path)`` pools the same way)."""
    from sentence_transformers.sentence_transformer.modules import Pooling

    found = [name for name, module in model.named_children() if isinstance(module, Pooling)]
    if not found:
        raise EmbedbenchError(f"model.pooling={pooling}: the model has no pooling module to replace "
                              f"({', '.join(type(m).__name__ for m in model)})")
    old = model._modules[found[0]]
    model._modules[found[0]] = Pooling(old.get_embedding_dimension(), pooling_mode=ST_POOLING[str(pooling)],
                                       include_prompt=old.include_prompt)


def causal_modules(transformer: torch.nn.Module) -> list[torch.nn.Module]:
    return [module for module in transformer.modules() if getattr(module, "is_causal", False) is True]


def make_bidirectional(transformer: torch.nn.Module) -> None:
    """Every token attends to every real token: the padding mask goes in as a full 4-D mask, which transformers
    takes as it is instead of building the causal one. A forward pre-hook, so copies of the model (the bf16
    runtime's) keep it."""
    attention = causal_modules(transformer)
    if not attention:
        raise EmbedbenchError(f"model.bidirectional=true: {type(transformer).__name__} has no causal attention "
                              "to remove (an encoder attends both ways already)")
    implementation = transformer.config._attn_implementation
    if implementation not in ("sdpa", "eager"):
        raise EmbedbenchError(f"model.bidirectional=true: attention implementation {implementation!r}; "
                              "sdpa and eager take a full mask")
    for module in attention:
        module.is_causal = False  # kernels that pick causality from the module (no mask given) see it too
    transformer.register_forward_pre_hook(_full_mask, with_kwargs=True)


def _full_mask(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    mask = kwargs.get("attention_mask")
    if mask is None or mask.dim() != 2:
        return args, kwargs
    keys = mask[:, None, None, :].bool().expand(-1, 1, mask.shape[1], -1)
    if module.config._attn_implementation == "eager":
        dtype = next(module.parameters()).dtype
        keys = torch.zeros(keys.shape, dtype=dtype, device=mask.device).masked_fill(~keys, torch.finfo(dtype).min)
    return args, {**kwargs, "attention_mask": keys}


def set_padding_side(model, side: str) -> None:
    model.tokenizer.padding_side = str(side)
