"""Apply a base loss to every view a model declares, weighted: Matryoshka and its 2-D kin.

One transformer forward per text column gives every layer needed; each view is
a cut of a pooled layer. This is a sentence-transformers loss module (called
as ``loss(features, labels)``), so its trainer drives it.
"""
from __future__ import annotations

import torch
from torch import nn

from embedbench.views import ViewSet, cut


class ViewObjective(nn.Module):
    def __init__(self, encoder, views: ViewSet, base):
        super().__init__()
        self.model = encoder.model  # the trainer looks for the wrapped model here
        self.encoder = encoder
        self.views = views
        self.base = base
        self.weights = dict(views.weights)
        self.layers = sorted({view.layer for view in self.weights})

    def forward(self, sentence_features, labels=None) -> torch.Tensor:
        pooled = [self.encoder.pooled(features, self.layers) for features in sentence_features]
        total = 0.0
        for view, weight in self.weights.items():
            if weight:
                total = total + weight * self.base([cut(column[view.layer], view.dim) for column in pooled])
        return total

    def get_config_dict(self) -> dict:
        return {**self.base.config(), "views": {self.views.name(v) or "full": w for v, w in self.weights.items()}}
