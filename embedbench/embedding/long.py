"""Inputs longer than a model's window (``model.long``), the strategies LongEmbed compares:

- ``truncate``: the first ``max_seq_length`` tokens (sentence-transformers' way);
- ``chunk``: consecutive windows of ``max_seq_length`` tokens, each embedded, their pooled embeddings
  averaged (``model.long_pooling=mean``) or maxed per coordinate (``max``); a text within the window is
  one window, embedded exactly as truncation would;
- ``interpolate``: position interpolation to ``model.long_length`` positions: an absolute-position model
  gets a position table linearly interpolated from its own (position j reads the original at
  j x original / new), a RoPE model its rotary frequencies divided by new / original;
- ``ntk``: NTK-aware scaling for RoPE models: the rotary base multiplied by s^(d / (d - 2)) for a scale
  s = new / original, which leaves the highest frequencies nearly as trained and stretches the lowest;
- ``group`` and ``recur``: grouped and recurrent positions for absolute-position models: position j reads
  the original table at floor(j x original / new), or at j mod original;
- ``selfextend``: SelfExtend (Jin et al., 2024) for RoPE models: tokens within a neighbour window of half
  the original length see their true relative positions, farther ones grouped positions
  (floor(position / G), shifted to meet the window), G the smallest group that reaches the new length.
  The attention is transformers' own call with an attention function of its registry, so every
  attention module of the model, causal or made bidirectional, gets it; rotary embeddings in the
  rotate-half layout (Llama, Qwen, Mistral) are assumed.
"""
from __future__ import annotations

import math

import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from embedbench.embedding.dropout import masked_scores
from embedbench.errors import EmbedbenchError

EXTENSIONS = ("interpolate", "ntk", "group", "recur", "selfextend")  # what changes the model's positions
TABLE_ONLY = ("group", "recur")
SELF_EXTEND = "embedbench_selfextend"  # the attention implementation's name in transformers' registry
# the transformers config key that carries a rotary extension into the saved model: the scaled frequencies are
# not among the weights it saves, and SelfExtend is code, so loading the model extends it again from this
SAVED_WINDOW = "embedbench_window"


def extend_window(model, strategy: str, length: int) -> None:
    """One of :data:`EXTENSIONS`: the loaded sentence-transformers ``model`` made to take ``length`` tokens."""
    network = model[0].auto_model
    original = int(network.config.max_position_embeddings)
    if length <= original:
        raise EmbedbenchError(f"model.long_length={length}: the model already takes {original} positions; "
                              "extending needs more")
    rotary = rotary_modules(network)
    table = getattr(getattr(network, "embeddings", None), "position_embeddings", None)
    if rotary and strategy in TABLE_ONLY:
        raise EmbedbenchError(f"model.long={strategy} re-reads an absolute position table, and this model has "
                              "rotary positions; use interpolate, ntk or selfextend")
    if rotary and strategy == "selfextend":
        window = original // 2
        self_extend(network, math.ceil((length - window) / (original - window)), window)
    elif rotary:
        for module in rotary:
            module.inv_freq = _scaled(module.inv_freq, length / original, strategy)
            if hasattr(module, "original_inv_freq"):
                module.original_inv_freq = module.inv_freq
    elif strategy in ("ntk", "selfextend"):
        raise EmbedbenchError(f"model.long={strategy} works on rotary position embeddings, and this model has "
                              "none; use interpolate, group or recur for an absolute-position model")
    elif isinstance(table, torch.nn.Embedding):
        _extend_table(network.embeddings, table, length, strategy)
    else:
        raise EmbedbenchError(f"model.long={strategy}: found neither rotary nor absolute position embeddings")
    if rotary:
        setattr(network.config, SAVED_WINDOW, {"long": strategy, "length": length, "positions": original})
    network.config.max_position_embeddings = length
    model.max_seq_length = length
    model.tokenizer.model_max_length = length


def _scaled(inv_freq: torch.Tensor, scale: float, strategy: str) -> torch.Tensor:
    if strategy == "interpolate":
        return inv_freq / scale
    dim = 2 * len(inv_freq)  # the rotary dim; inv_freq_i = base^(-2i/d)
    index = torch.arange(len(inv_freq), dtype=torch.float64, device=inv_freq.device)
    factor = scale ** (dim / (dim - 2))
    return (inv_freq.double() * factor ** (-2 * index / dim)).to(inv_freq.dtype)


def rotary_modules(network) -> list[torch.nn.Module]:
    return [m for m in network.modules() if isinstance(getattr(m, "inv_freq", None), torch.Tensor)]


def _extend_table(embeddings, table: torch.nn.Embedding, length: int, strategy: str) -> None:
    old = table.weight.data
    positions = torch.arange(length, dtype=torch.float64)
    if strategy == "recur":
        positions = positions % len(old)
    else:
        positions = positions * (len(old) / length)
        if strategy == "group":
            positions = positions.floor()
    low = positions.floor().long().clamp(max=len(old) - 1)
    high = (low + 1).clamp(max=len(old) - 1)
    weight = (positions - low).unsqueeze(1).to(old.dtype)
    new = torch.nn.Embedding(length, old.shape[1], padding_idx=table.padding_idx, device=old.device,
                             dtype=old.dtype)
    new.weight.data = old[low] * (1 - weight) + old[high] * weight
    embeddings.position_embeddings = new
    for name in ("position_ids", "token_type_ids"):  # buffers sized to the old table
        buffer = getattr(embeddings, name, None)
        if isinstance(buffer, torch.Tensor):
            fresh = torch.arange(length, device=buffer.device) if name == "position_ids" else torch.zeros(
                length, dtype=buffer.dtype, device=buffer.device)
            embeddings.register_buffer(name, fresh.expand(1, -1).to(buffer.dtype), persistent=False)


def self_extend(network, group: int, window: int) -> None:
    """SelfExtend on every attention module of ``network``: within ``window`` tokens true relative positions,
    beyond it positions grouped by ``group``."""
    (rotary,) = rotary_modules(network)  # one rotary table serves every layer in the models this targets
    attention = [module for module in network.modules() if hasattr(module, "is_causal")]
    if not attention:
        raise EmbedbenchError(f"model.long=selfextend: found no attention modules in {type(network).__name__}")
    for module in attention:
        module.self_extend = (rotary, group, window)  # a tuple: a plain attribute, which copies of the model keep
    AttentionInterface.register(SELF_EXTEND, self_extended_attention)
    AttentionMaskInterface.register(SELF_EXTEND, eager_mask)  # a materialised mask, causal or not
    network.config._attn_implementation = SELF_EXTEND


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """``x`` (batch, heads, tokens, head dim) turned by the angles of ``cos``/``sin`` (batch, tokens, rotary
    dim); coordinates past the rotary dim pass as they are."""
    d = cos.shape[-1]
    cos, sin = cos[:, None], sin[:, None]
    return torch.cat([x[..., :d] * cos + _rotate_half(x[..., :d]) * sin, x[..., d:]], dim=-1)


def self_extended_attention(module, query, key, value, attention_mask, scaling: float, dropout: float = 0.0,
                            **kwargs):
    """Scores from true positions within the window, from grouped ones beyond it (keys to the left see the
    query shifted forward by window - window // group, keys to the right shifted back, so relative distances
    keep their sign), over the queries and keys the module rotated at their true positions."""
    rotary, group, window = module.self_extend
    positions = kwargs.get("position_ids")
    if positions is None:
        positions = torch.arange(query.shape[-2], device=query.device)[None]
    if key.shape[1] != query.shape[1]:  # grouped-query attention
        repeat = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(repeat, dim=1), value.repeat_interleave(repeat, dim=1)
    cos, sin = rotary(value, positions)
    raw_query, raw_key = _rotate(query, cos, -sin), _rotate(key, cos, -sin)  # the rotation undone
    shift, grouped = window - window // group, positions // group
    far_key = _rotate(raw_key, *rotary(value, grouped)).transpose(-1, -2)
    left = _rotate(raw_query, *rotary(value, grouped + shift)) @ far_key
    right = _rotate(raw_query, *rotary(value, grouped - shift)) @ far_key
    i, j = positions[:, None, :, None], positions[:, None, None, :]
    scores = torch.where((i - j).abs() < window, query @ key.transpose(-1, -2), torch.where(j < i, left, right))
    scores = scores.float() * scaling
    if attention_mask is None and module.is_causal:
        attention_mask = (j <= i)
    weights = torch.nn.functional.softmax(masked_scores(scores, attention_mask), dim=-1).to(query.dtype)
    weights = torch.nn.functional.dropout(weights, p=dropout, training=module.training)
    return (weights @ value).transpose(1, 2).contiguous(), weights


def windows(tokenizer, texts: list[str], size: int) -> tuple[list[str], torch.Tensor]:
    """``texts`` cut into consecutive pieces of at most ``size`` tokens (at token boundaries of the original
    string), and for each piece the index of its text."""
    pieces, owners = [], []
    offsets = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, return_attention_mask=False,
                        return_token_type_ids=False, verbose=False)["offset_mapping"]
    for i, (text, spans) in enumerate(zip(texts, offsets)):
        if len(spans) <= size:
            pieces.append(text)
            owners.append(i)
            continue
        for start in range(0, len(spans), size):
            window = spans[start:start + size]
            pieces.append(text[window[0][0]:window[-1][1]])
            owners.append(i)
    return pieces, torch.tensor(owners)


def merged(pooled: dict[int, torch.Tensor], owners: torch.Tensor, n: int, how: str) -> dict[int, torch.Tensor]:
    """Each text's embedding from its windows' (per layer): their mean, or their coordinate-wise max."""
    out = {}
    for layer, rows in pooled.items():
        if how == "max":
            out[layer] = torch.zeros(n, rows.shape[1], dtype=rows.dtype).scatter_reduce_(
                0, owners.unsqueeze(1).expand_as(rows), rows, "amax", include_self=False)
        else:
            counts = torch.bincount(owners, minlength=n).clamp(min=1).unsqueeze(1).to(rows.dtype)
            out[layer] = torch.zeros(n, rows.shape[1], dtype=rows.dtype).index_add_(0, owners, rows) / counts
    return out
