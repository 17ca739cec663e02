"""Backward-compatible training (BCT, Shen et al. 2020), the route to the compatibility that Stationary
Representations study: beside the objective, each view's query embeddings are contrasted, over the batch,
against a frozen reference model's embeddings of the batch's positive documents (the same view cut from
the reference), so that the new model's queries keep finding the documents an index of the reference holds.
The reference embeds the training documents once, before training (through the embedding cache); a batch
finds its rows by the row index the dataset carries as its label."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from embedbench.embedding.views import View, ViewSet

ROW = "label"  # the dataset column that carries each pair's row: the trainer hands it to the loss as labels


class CompatTerm:
    def __init__(self, pooled: dict[int, torch.Tensor], views: ViewSet, weight: float, temperature: float):
        self.pooled, self.views, self.weight, self.temperature = pooled, views, float(weight), float(temperature)

    def __call__(self, queries: torch.Tensor, view: View, rows: torch.Tensor) -> torch.Tensor:
        """InfoNCE of ``queries`` (this view, as the views score) against the reference's view of the batch's
        documents."""
        batch = {view.layer: self.pooled[view.layer][rows.cpu()]}
        documents = self.views.scored(batch, view).to(queries.device, queries.dtype)
        scores = queries @ documents.T / self.temperature
        return F.cross_entropy(scores, torch.arange(len(queries), device=queries.device))
