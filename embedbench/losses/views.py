"""Apply a base loss to a model's views: Matryoshka, Starbucks and 2DMSE are all this module.

One transformer forward per text column gives every layer needed; each view is a cut of a
pooled layer. Which views enter the loss is the model's choice:
- fixed (MRL, Starbucks, separate): every declared view, weighted, at every step;
- ``sample: 2dmse``: each step draws one layer n < L and one dim d, and the loss covers
  (L, full), (n, full), (L, d), (n, d).
An optional alignment term pulls each smaller view's in-batch score distribution towards the
full view's (KL, teacher side detached), as Starbucks and 2DMSE do.
This is a sentence-transformers loss module (called as ``loss(features, labels)``).
"""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from embedbench.errors import EmbedbenchError
from embedbench.views import View, ViewSet, cut


class ViewObjective(nn.Module):
    def __init__(self, encoder, views: ViewSet, base, sample: str | None = None, sample_dims=None,
                 align_weight: float = 0.0, seed: int = 0):
        super().__init__()
        self.model = encoder.model  # the trainer looks for the wrapped model here
        self.encoder = encoder
        self.views = views
        self.base = base
        self.weights = dict(views.weights)
        self.sample = sample
        self.align_weight = float(align_weight)
        if sample not in (None, "2dmse"):
            raise EmbedbenchError(f"model.objective.sample={sample}: expected null or 2dmse")
        if sample and views.n_layers < 2:
            raise EmbedbenchError("model.objective.sample=2dmse: needs an encoder of at least 2 layers")
        self.sample_dims = [int(d) for d in (sample_dims or [v.dim for v in views.views])]
        bad = [d for d in self.sample_dims if not 1 <= d <= views.hidden_size]
        if bad:
            raise EmbedbenchError(f"model.objective.sample_dims: {bad[0]} is outside 1..{views.hidden_size}")
        self.rng = random.Random(seed)

    def step_views(self) -> dict[View, float]:
        """The views (and weights) that enter this step's loss."""
        if self.sample != "2dmse":
            return {view: weight for view, weight in self.weights.items() if weight}
        last, full = self.views.n_layers, self.views.hidden_size
        layer = self.rng.randint(1, last - 1)
        dim = self.rng.choice(self.sample_dims)
        return {View(last, full): 1.0, View(layer, full): 1.0, View(last, dim): 1.0, View(layer, dim): 1.0}

    def forward(self, sentence_features, labels=None) -> torch.Tensor:
        active = self.step_views()
        full = self.views.full
        needed = set(active) | ({full} if self.align_weight else set())
        layers = sorted({view.layer for view in needed})
        pooled = [self.encoder.pooled(features, layers) for features in sentence_features]
        columns = {view: [cut(column[view.layer], view.dim) for column in pooled] for view in needed}
        total = sum(weight * self.base(columns[view]) for view, weight in active.items())
        if self.align_weight:
            teacher = F.softmax(self.base.scores(columns[full]).detach(), dim=-1)
            for view in active:
                if view != full:
                    student = F.log_softmax(self.base.scores(columns[view]), dim=-1)
                    total = total + self.align_weight * F.kl_div(student, teacher, reduction="batchmean")
        return total

    def get_config_dict(self) -> dict:
        return {**self.base.config(), "sample": self.sample, "align_weight": self.align_weight,
                "views": {self.views.name(v) or "full": w for v, w in self.weights.items()}}
