"""Views: the embedding taken at one transformer layer, cut to one dim.

A model config declares its views; training objectives and evaluation both
read them through this module, so a view means the same thing in both.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from embedbench.errors import EmbedbenchError

COSINE, DOT = "cosine", "dot"
SIMILARITIES = (COSINE, DOT)


@dataclass(frozen=True, order=True)
class View:
    layer: int  # 1-based transformer layer whose hidden states are pooled
    dim: int  # leading coordinates kept (Matryoshka cut)


@dataclass(frozen=True)
class ViewSet:
    """The views a model exposes, with the shape of the encoder they cut from and how the model scores."""

    views: tuple[View, ...]  # what evaluation scores
    n_layers: int
    hidden_size: int
    weights: tuple[tuple[View, float], ...] = ()  # what the objective sums: the declared views
    unit_length: bool = True  # the model's own output is normalised (it ends in a Normalize module)
    similarity: str = COSINE  # what retrieval and reranking rank by: cosine or dot

    def features(self, pooled: dict[int, torch.Tensor], view: View) -> torch.Tensor:
        """The view's embeddings as the model gives them, which classifiers and k-means fit (as in mteb):
        the slice of its layer, re-normalised where the model's own output is unit length."""
        sliced = pooled[view.layer][..., : view.dim]
        return F.normalize(sliced, p=2, dim=-1) if self.unit_length else sliced

    def scored(self, pooled: dict[int, torch.Tensor], view: View) -> torch.Tensor:
        """The view's embeddings whose inner products are the model's similarity (what retrieval ranks by):
        unit length for a cosine model or a normalising one, as they are for an unnormalised dot model."""
        sliced = pooled[view.layer][..., : view.dim]
        return F.normalize(sliced, p=2, dim=-1) if self.unit_length or self.similarity == COSINE else sliced

    @property
    def layers(self) -> list[int]:
        return sorted({v.layer for v in self.views})

    @property
    def full(self) -> View:
        return View(self.n_layers, self.hidden_size)

    @property
    def trains_full(self) -> bool:
        """Whether the objective has a term for the full view (every view cut from a model trained so)."""
        return dict(self.weights).get(self.full, 0) > 0

    def name(self, view: View, variant: str = "") -> str:
        """Metric-name suffix: '' for the full view, '/d64' on the last layer, '/l3_d64' elsewhere;
        a variant (an index, a precision) is appended: '/binary', '/d64_binary'."""
        if view == self.full:
            base = ""
        elif view.layer == self.n_layers:
            base = f"/d{view.dim}"
        else:
            base = f"/l{view.layer}_d{view.dim}"
        if not variant:
            return base
        return f"{base}_{variant}" if base else f"/{variant}"


def build_views(spec, n_layers: int, hidden_size: int, unit_length: bool = True,
                similarity: str = COSINE) -> ViewSet:
    """Views from a config block: ``pairs`` ([[layer, dim], ...]) or ``layers`` x ``dims``.

    ``layers`` may be null (the last layer), ``all`` or a list; ``dims`` null (full width) or as
    :func:`resolve_dims` reads it. The full view is always included so a model's headline score is always there.
    """
    pairs = spec.pairs
    if pairs:
        candidates = [(int(layer), int(dim)) for layer, dim in pairs]
    else:
        layers = spec.layers
        if layers is None:
            layers = [n_layers]
        elif layers == "all":
            layers = list(range(1, n_layers + 1))
        dims = resolve_dims(spec.dims, hidden_size) if spec.dims else [hidden_size]
        candidates = list(itertools.product(layers, dims))
    _check(candidates, n_layers, hidden_size, "model.views")
    declared = list(dict.fromkeys(View(int(layer), int(dim)) for layer, dim in candidates))
    weights = spec.weights
    if weights is None:
        weights = [1.0] * len(declared)
    if len(weights) != len(declared):
        raise EmbedbenchError(f"model.views.weights: {len(weights)} weight(s) for {len(declared)} view(s)")
    ordered = sorted(set(declared) | {View(n_layers, hidden_size)}, key=lambda v: (-v.layer, -v.dim))
    return ViewSet(tuple(ordered), n_layers, hidden_size, tuple(zip(declared, map(float, weights))), unit_length,
                   similarity)


def _check(pairs, n_layers: int, hidden_size: int, key: str) -> None:
    for layer, dim in pairs:
        if not 1 <= int(layer) <= n_layers:
            raise EmbedbenchError(f"{key}: layer {layer} is outside the encoder's 1..{n_layers} layers")
        if not 1 <= int(dim) <= hidden_size:
            raise EmbedbenchError(f"{key}: dim {dim} is outside 1..{hidden_size} (the encoder's hidden size)")


def resolve_dims(dims, hidden_size: int) -> list[int]:
    """``ladder`` (:func:`ladder` of the hidden size), or a list of dims whose ``full`` entries are the hidden
    size: a recipe's dims for any encoder's width."""
    return ladder(hidden_size) if dims == "ladder" else [hidden_size if dim == "full" else int(dim) for dim in dims]


def ladder(hidden_size: int, smallest: int = 32) -> list[int]:
    """The full width, then every power of two below it down to ``smallest``: 384, 256, 128, 64, 32."""
    dims, power = [hidden_size], 1 << (hidden_size - 1).bit_length() - 1
    while power >= smallest:
        if power < hidden_size:
            dims.append(power)
        power //= 2
    return dims


def with_grid(views: ViewSet, grid) -> ViewSet:
    """Evaluation views plus a layer x dim grid (``eval.grid``); the objective's weights are untouched.

    ``full``: every layer x the model's dims (or, for a single-dim model, :func:`ladder`);
    a mapping ``{layers, dims}`` picks them (null = that default).
    """
    if not grid:
        return views
    model_dims = sorted({v.dim for v in views.views}, reverse=True)
    default_dims = model_dims if len(model_dims) > 1 else ladder(views.hidden_size)
    all_layers = list(range(1, views.n_layers + 1))
    if grid == "full":
        layers, dims = all_layers, default_dims
    else:
        layers = grid.get("layers") or all_layers
        dims = resolve_dims(grid["dims"], views.hidden_size) if grid.get("dims") else default_dims
    extra = list(itertools.product(layers, dims))
    _check(extra, views.n_layers, views.hidden_size, "eval.grid")
    merged = set(views.views) | {View(int(layer), int(dim)) for layer, dim in extra}
    ordered = tuple(sorted(merged, key=lambda v: (-v.layer, -v.dim)))
    return replace(views, views=ordered)


def cut(pooled: torch.Tensor, dim: int) -> torch.Tensor:
    """The first ``dim`` coordinates, re-normalised to unit length."""
    return F.normalize(pooled[..., :dim], p=2, dim=-1)
