"""The d-Simplex fixed classifier (Pernici et al.), which Stationary Representations (Biondi et al., 2024)
prove the optimal route to compatible representations: K class vectors fixed at the vertices of a regular
simplex (unit length, every pair at cosine -1/(K-1)), never trained; each text's view embedding is pulled
to its class's vertex by cross-entropy over the cosines. Two models trained this way on the same classes
share one target geometry, so each can search the other's index (``eval.compat.reference``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from embedbench.errors import EmbedbenchError


def simplex(classes: int, dim: int) -> torch.Tensor:
    """[classes, dim]: a regular simplex's vertices in the first classes - 1 coordinates, zeros after."""
    if classes < 2 or dim < classes - 1:
        raise EmbedbenchError(f"loss=dsimplex: {classes} classes need at least {classes - 1} dims, the view has {dim}")
    centred = torch.eye(classes, dtype=torch.float64) - 1.0 / classes  # rows: e_i - mean, in the sum-zero plane
    basis, _ = torch.linalg.qr(centred.T)  # orthonormal columns spanning that plane (the first K - 1)
    vertices = centred @ basis[:, : classes - 1]
    vertices = vertices / vertices.norm(dim=1, keepdim=True)
    return F.pad(vertices, (0, dim - (classes - 1))).float()


class DSimplex:
    alignment = "embeddings"  # a smaller view aligns to the full one coordinate-wise, as scored-pair losses do

    def __init__(self, classes: int, temperature: float = 0.05):
        self.classes, self.temperature = int(classes), float(temperature)
        self._vertices: dict[int, torch.Tensor] = {}

    def vertices(self, dim: int, like: torch.Tensor) -> torch.Tensor:
        if dim not in self._vertices:
            self._vertices[dim] = simplex(self.classes, dim)
        return self._vertices[dim].to(like.device, like.dtype)

    def __call__(self, columns: list[torch.Tensor], labels: torch.Tensor | None = None) -> torch.Tensor:
        """columns: [texts] ([batch, dim], unit-norm); labels: each text's class index."""
        if labels is None:
            raise EmbedbenchError("loss=dsimplex needs class labels: data.format=classes on a labelled table")
        logits = columns[0] @ self.vertices(columns[0].shape[1], columns[0]).T / self.temperature
        return F.cross_entropy(logits, labels.long().to(logits.device))

    def config(self) -> dict:
        return {"classes": self.classes, "temperature": self.temperature}
