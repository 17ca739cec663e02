"""Losses for scored pairs (STS-style training): sentence-transformers' CoSENT and AnglE, applied
to view embeddings through their ``compute_loss_from_embeddings``."""
from __future__ import annotations

import torch
from sentence_transformers.sentence_transformer.losses import AnglELoss, CoSENTLoss


class ScoredPairLoss:
    """Ranks every two pairs of the batch by their similarity as their gold scores rank them."""

    LOSSES = {"cosent": CoSENTLoss, "angle": AnglELoss}
    alignment = "embeddings"  # a view is aligned to the last layer at its dim, embedding to embedding

    def __init__(self, kind: str, scale: float = 20.0):
        self.kind, self.scale = kind, float(scale)
        self.loss = self.LOSSES[kind](model=None, scale=self.scale)

    def __call__(self, columns: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        return self.loss.compute_loss_from_embeddings(columns, labels)

    def config(self) -> dict:
        return {"kind": self.kind, "scale": self.scale}
