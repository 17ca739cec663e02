"""Inputs longer than a model's window (``model.long``), the strategies LongEmbed compares:

- ``truncate``: the first ``max_seq_length`` tokens (sentence-transformers' way);
- ``chunk``: consecutive windows of ``max_seq_length`` tokens, each embedded, their pooled embeddings
  averaged (``model.long_pooling=mean``) or maxed per coordinate (``max``); a text within the window is
  one window, embedded exactly as truncation would;
- ``interpolate``: position interpolation to ``model.long_length`` positions: an absolute-position model
  gets a position table linearly interpolated from its own (position j reads the original at
  j x original / new), a RoPE model its rotary frequencies divided by new / original;
- ``ntk``: NTK-aware scaling for RoPE models: the rotary base multiplied by s^(d / (d - 2)) for a scale
  s = new / original, which leaves the highest frequencies nearly as trained and stretches the lowest.
"""
from __future__ import annotations

import torch

from embedbench.errors import EmbedbenchError

STRATEGIES = ("truncate", "chunk", "interpolate", "ntk")


def extend_window(model, strategy: str, length: int) -> None:
    """``interpolate`` or ``ntk``: the loaded sentence-transformers ``model`` made to take ``length`` tokens."""
    network = model[0].auto_model
    original = int(network.config.max_position_embeddings)
    if length <= original:
        raise EmbedbenchError(f"model.long_length={length}: the model already takes {original} positions; "
                              "extending needs more")
    rotary = [m for m in network.modules() if isinstance(getattr(m, "inv_freq", None), torch.Tensor)]
    table = getattr(getattr(network, "embeddings", None), "position_embeddings", None)
    if rotary:
        for module in rotary:
            module.inv_freq = _scaled(module.inv_freq, length / original, strategy)
            if hasattr(module, "original_inv_freq"):
                module.original_inv_freq = module.inv_freq
    elif strategy == "ntk":
        raise EmbedbenchError("model.long=ntk scales rotary position embeddings, and this model has none; "
                              "use interpolate for an absolute-position model")
    elif isinstance(table, torch.nn.Embedding):
        _interpolate_table(network.embeddings, table, length)
    else:
        raise EmbedbenchError(f"model.long={strategy}: found neither rotary nor absolute position embeddings")
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


def _interpolate_table(embeddings, table: torch.nn.Embedding, length: int) -> None:
    old = table.weight.data
    positions = torch.arange(length, dtype=torch.float64) * (len(old) / length)
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
