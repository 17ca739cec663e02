"""Losses over each query's candidate list [positive, negative_1, ...] against teacher scores or
graded labels (``labels``: [batch, candidates]); columns are [queries, candidate_1, ...], unit-norm.

- ``margin_mse`` (TAS-B, Hofstätter et al. 2021): MSE of student vs teacher margins pos - neg
  (sentence-transformers' MarginMSELoss);
- ``kl_distill``: KL of the student's softmax over the list to the teacher's
  (sentence-transformers' DistillKLDivLoss);
- ``score_mse`` (Distilled Sentence Embedding, Barkan et al. 2020): MSE of every student score to
  the teacher's;
- ``wasserstein`` (Beyond Contrastive Learning, 2025): per query, the student distribution
  softmax(scores / temperature) and the target softmax(labels / label_temperature); a Gaussian is
  fitted to each set of distributions over the batch and the loss is the closed-form squared
  2-Wasserstein distance between the two Gaussians.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss, MarginMSELoss


def list_scores(columns: list[torch.Tensor]) -> torch.Tensor:
    """Cosine of each query to each of its own candidates: [batch, candidates]."""
    return torch.stack([(columns[0] * candidate).sum(-1) for candidate in columns[1:]], dim=1)


class MarginMSE:
    alignment = "embeddings"

    def __init__(self):
        self.loss = MarginMSELoss(model=None)

    def __call__(self, columns, labels):
        return self.loss.compute_loss_from_embeddings(columns, labels)

    def config(self) -> dict:
        return {}


class KLDistill:
    alignment = "embeddings"

    def __init__(self, temperature: float = 1.0, teacher_temperature: float | None = None):
        self.temperature, self.teacher_temperature = float(temperature), teacher_temperature
        self.loss = DistillKLDivLoss(model=None, temperature=self.temperature, teacher_temperature=teacher_temperature)

    def __call__(self, columns, labels):
        return self.loss.compute_loss_from_embeddings(columns, labels)

    def config(self) -> dict:
        return {"temperature": self.temperature, "teacher_temperature": self.teacher_temperature}


class ScoreMSE:
    alignment = "embeddings"

    def __call__(self, columns, labels):
        return F.mse_loss(list_scores(columns), labels.to(columns[0].dtype))

    def config(self) -> dict:
        return {}


def gaussian_w2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein distance between Gaussians fitted to the rows of x and of y:
    |mu_x - mu_y|^2 + tr(Sx) + tr(Sy) - 2 tr((Sx^1/2 Sy Sx^1/2)^1/2).

    With S = A^T A (A: centred rows / sqrt(n - 1)) the last trace is the nuclear norm of Ax Ay^T, whose
    gradient (through singular values only) stays finite where the matrix square roots' would not:
    covariances of distributions over a list are always singular (rows sum to 1).
    """
    def factor(rows):
        mean = rows.mean(0)
        return mean, (rows - mean) / max(len(rows) - 1, 1) ** 0.5

    (mu_x, a_x), (mu_y, a_y) = factor(x.double()), factor(y.double())
    cross = torch.linalg.svdvals(a_x @ a_y.T).sum()
    distance = (mu_x - mu_y).pow(2).sum() + a_x.pow(2).sum() + a_y.pow(2).sum() - 2 * cross
    return distance.to(x.dtype)


class Wasserstein:
    alignment = "embeddings"

    def __init__(self, temperature: float = 0.05, label_temperature: float = 1.0):
        self.temperature, self.label_temperature = float(temperature), float(label_temperature)

    def __call__(self, columns, labels):
        student = F.softmax(list_scores(columns) / self.temperature, dim=-1)
        target = F.softmax(labels.to(columns[0].dtype) / self.label_temperature, dim=-1)
        return gaussian_w2(student, target)

    def config(self) -> dict:
        return {"temperature": self.temperature, "label_temperature": self.label_temperature}
