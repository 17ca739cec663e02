"""What a model setting changes in a loaded sentence-transformers model: its pooling head, the causal mask of
a decoder-only transformer, the tokenizer's padding side, low-rank adapters for training."""
from __future__ import annotations

import functools
import types

import torch

from embedbench.embedding.long import SELF_EXTEND
from embedbench.errors import EmbedbenchError

# the transformers config key that carries the removed causal mask into the saved model (transformers keeps
# a config's unknown keys): loading that model through embedbench removes the mask again
SAVED_BIDIRECTIONAL = "embedbench_bidirectional"

ST_POOLING = {"mean": "mean", "cls": "cls", "max": "max", "last_token": "lasttoken"}


def set_pooling(model, pooling: str, latent=None) -> None:
    """Replace the model's pooling module by sentence-transformers' ``pooling`` one, or by latent attention
    (``latent``: its sizes); saved with the model, so ``SentenceTransformer(path)`` pools the same way. A
    model whose head is already of that kind keeps it (and its trained weights)."""
    from sentence_transformers.sentence_transformer.modules import Pooling

    from embedbench.embedding.latent import LatentAttentionPooling

    found = [name for name, module in model.named_children() if isinstance(module, (Pooling, LatentAttentionPooling))]
    if not found:
        raise EmbedbenchError(f"model.pooling={pooling}: the model has no pooling module to replace "
                              f"({', '.join(type(m).__name__ for m in model)})")
    old = model._modules[found[0]]
    dim = old.get_embedding_dimension()
    if str(pooling) == "latent_attention":
        if not isinstance(old, LatentAttentionPooling):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)  # the same new head in every process that loads the model so (device workers)
                head = LatentAttentionPooling(dim, latent.latents, latent.heads, latent.mlp_ratio,
                                              getattr(old, "include_prompt", True))
            model._modules[found[0]] = head.to(next(model.parameters()).device)
    else:
        model._modules[found[0]] = Pooling(dim, pooling_mode=ST_POOLING[str(pooling)],
                                           include_prompt=getattr(old, "include_prompt", True))


def set_include_prompt(model, include: bool) -> None:
    """Whether the model's pooling averages a prompt's tokens with the text's; saved with the model."""
    from sentence_transformers.sentence_transformer.modules import Pooling

    from embedbench.embedding.latent import LatentAttentionPooling

    heads = [module for module in model if isinstance(module, (Pooling, LatentAttentionPooling))]
    if not heads:
        raise EmbedbenchError(f"model.include_prompt={str(include).lower()}: the model has no pooling module "
                              f"({', '.join(type(m).__name__ for m in model)})")
    for head in heads:
        head.include_prompt = include


def causal_modules(transformer: torch.nn.Module) -> list[torch.nn.Module]:
    return [module for module in transformer.modules() if getattr(module, "is_causal", False) is True]


def make_bidirectional(transformer: torch.nn.Module) -> None:
    """Every token attends to every real token: the padding mask goes in as a full 4-D mask, which transformers
    takes as it is instead of building the causal one. The module's own ``forward`` is replaced, not hooked:
    sentence-transformers calls ``forward`` directly (training does, through the model), which passes no hook.
    Bound to the module, so a copy of it (the bf16 runtime's) is bound to the copy."""
    attention = causal_modules(transformer)
    if not attention:
        raise EmbedbenchError(f"model.bidirectional=true: {type(transformer).__name__} has no causal attention "
                              "to remove (an encoder attends both ways already)")
    implementation = transformer.config._attn_implementation
    if implementation not in ("sdpa", "eager", SELF_EXTEND):
        raise EmbedbenchError(f"model.bidirectional=true: attention implementation {implementation!r}; "
                              "sdpa, eager and SelfExtend take a full mask")
    for module in attention:
        module.is_causal = False  # kernels that pick causality from the module (no mask given) see it too
    setattr(transformer.config, SAVED_BIDIRECTIONAL, True)
    causal_forward = type(transformer).forward

    @functools.wraps(causal_forward)  # the signature callers inspect for the inputs it takes
    def forward(self, *args, **kwargs):
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 2:
            kwargs["attention_mask"] = _full_mask(self, mask)
        return causal_forward(self, *args, **kwargs)

    transformer.forward = types.MethodType(forward, transformer)


def _full_mask(module: torch.nn.Module, mask: torch.Tensor) -> torch.Tensor:
    keys = mask[:, None, None, :].bool().expand(-1, 1, mask.shape[1], -1)
    if module.config._attn_implementation == "eager":
        dtype = next(module.parameters()).dtype
        keys = torch.zeros(keys.shape, dtype=dtype, device=mask.device).masked_fill(~keys, torch.finfo(dtype).min)
    return keys


def set_padding_side(model, side: str) -> None:
    model.tokenizer.padding_side = str(side)


def add_lora(model, lora) -> None:
    """peft's LoRA layers in the transformer, every other transformer weight frozen."""
    try:
        from peft import LoraConfig as PeftLoraConfig
        from peft import inject_adapter_in_model
    except ImportError:
        raise EmbedbenchError("model.lora needs the peft package: pip install peft") from None
    if not hasattr(model[0], "model"):
        raise EmbedbenchError(f"model.lora: {type(model[0]).__name__} is not a transformer to adapt")
    config = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                            target_modules=list(lora.target_modules) if lora.target_modules else None)
    try:
        # peft itself, in place: the transformer keeps its class and forward, which the encoder relies on
        inject_adapter_in_model(config, model[0].model)
    except ValueError as exc:  # peft's words for an architecture it has no default targets for, or a bad name
        raise EmbedbenchError(f"model.lora: {str(exc).splitlines()[0]}") from None


def merge_lora(model) -> None:
    """Fold the adapters into the weights they adapt and drop them: a plain model, equal in its outputs."""
    from peft.tuners.lora import LoraLayer

    transformer = model[0].model
    for name, module in list(transformer.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(transformer.get_submodule(parent), child, module.get_base_layer())
    transformer.__dict__.pop("peft_config", None)


def set_attention_dropout(network: torch.nn.Module, p: float) -> int:
    """Dropout ``p`` on the attention probabilities of every attention module in ``network``:
    BERT-style modules hold an ``nn.Dropout`` they pass to attention, LLaMA-style ones a float. The saved
    config keeps the model's own value. Returns how many modules were changed."""
    changed = 0
    for module in network.modules():
        if not type(module).__name__.endswith("Attention"):
            continue
        if isinstance(getattr(module, "dropout", None), torch.nn.Dropout):
            module.dropout.p = p
            changed += 1
        elif isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = p
            changed += 1
    return changed
