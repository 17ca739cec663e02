"""InfoNCE over in-batch negatives plus optional hard-negative columns."""
from __future__ import annotations

import torch
import torch.nn.functional as F


class InfoNCE:
    def __init__(self, temperature: float = 0.05, symmetric: bool = False):
        if temperature <= 0:
            raise TypeError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.symmetric = bool(symmetric)

    def scores(self, columns: list[torch.Tensor]) -> torch.Tensor:
        """Logits of each query over the batch's positives and hard negatives: [batch, candidates]."""
        candidates = torch.cat(columns[1:]) if len(columns) > 2 else columns[1]
        return columns[0] @ candidates.T / self.temperature

    def __call__(self, columns: list[torch.Tensor], labels: torch.Tensor | None = None) -> torch.Tensor:
        """columns: [queries, positives, *hard negatives], each [batch, dim] and unit-norm; the target
        of each query is its own positive, so data labels are not used."""
        queries, positives = columns[0], columns[1]
        labels = torch.arange(len(queries), device=queries.device)
        loss = F.cross_entropy(self.scores(columns), labels)
        if self.symmetric:
            backward = F.cross_entropy(positives @ queries.T / self.temperature, labels)
            loss = (loss + backward) / 2
        return loss

    def config(self) -> dict:
        return {"temperature": self.temperature, "symmetric": self.symmetric}
