"""Apply a base loss to a model's views: Matryoshka, Starbucks and 2DMSE are all this module.

One transformer forward per text column gives every layer needed; each view is a cut of a
pooled layer, as evaluation scores it (unit length for a cosine model, as it is for a dot-product one,
so the base loss's inner products are the model's similarity). Which views enter the loss is the model's
choice:
- fixed (MRL, Starbucks, separate): every declared view, weighted, at every step;
- ``sample: 2dmse``: each step draws one layer n < L and one dim d, and the loss covers
  (L, full), (n, full), (L, d), (n, d).
An optional alignment term pulls each smaller view towards the full one (KL, teacher side
detached), as Starbucks and 2DMSE do: for contrastive losses on the in-batch score distribution
(Starbucks' retrieval training), for scored-pair losses (CoSENT, AnglE) on the embeddings, softmax
over coordinates at ``align_temperature``, the teacher being the last layer cut to the same dim.
This is a sentence-transformers loss module (called as ``loss(features, labels)``).
"""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from embedbench.embedding.views import View, ViewSet
from embedbench.errors import EmbedbenchError


def checked(total: torch.Tensor, terms: dict[str, torch.Tensor], kept: dict[str, list[float]], batch: int,
            on_nonfinite: str) -> torch.Tensor:
    """``total`` with its ``terms`` kept for the log when finite; otherwise stop naming the batch, or (skip) a
    fresh leaf: backward reaches no weight, so the batch changes nothing."""
    if torch.isfinite(total):
        for name, term in terms.items():
            kept.setdefault(name, []).append(float(term.detach()))
        return total
    if on_nonfinite == "stop":
        raise EmbedbenchError(f"training batch {batch}: loss is {total.item()}; lower the learning rate or check "
                              "the data, or set trainer.on_nonfinite=skip")
    return torch.zeros((), device=total.device, requires_grad=True)


class ViewObjective(nn.Module):
    def __init__(self, encoder, views: ViewSet, base, sample: str | None = None, sample_dims=None,
                 align_weight: float = 0.0, align_temperature: float = 1.0, on_nonfinite: str = "stop",
                 seed: int = 0):
        super().__init__()
        self.model = encoder.model  # the trainer swaps in its DDP-wrapped model here; forward runs through it
        self.encoder = encoder
        self.views = views
        self.base = base
        self.weights = dict(views.weights)
        self.sample = str(sample) if sample else None
        self.align_weight = float(align_weight)
        self.align_temperature = float(align_temperature)
        self.on_nonfinite = on_nonfinite
        self.batches = 0
        self._terms: dict[str, list[float]] = {}
        if base.alignment not in ("scores", "embeddings"):
            raise TypeError(f"{type(base).__name__}.alignment={base.alignment!r}: expected scores or embeddings")
        if sample and views.n_layers < 2:
            raise EmbedbenchError("model.objective.sample=2dmse: needs an encoder of at least 2 layers")
        self.sample_dims = [int(d) for d in (sample_dims or [v.dim for v in views.views])]
        bad = [d for d in self.sample_dims if not 1 <= d <= views.hidden_size]
        if bad:
            raise EmbedbenchError(f"model.objective.sample_dims: {bad[0]} is outside 1..{views.hidden_size}")
        self.rng = random.Random(seed)
        self.compat = None  # a losses.compat.CompatTerm (loss.compat), whose batch rows come as the labels

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
        pooled = [self.encoder.pooled(features, self.layers_for(active), through=self.model)
                  for features in sentence_features]
        return self.view_loss(pooled, active, labels)

    def layers_for(self, active: dict[View, float]) -> list[int]:
        """The layers this step's views and their alignment teachers read."""
        teachers = {self.align_target(view) for view in active} if self.align_weight else set()
        return sorted({view.layer for view in set(active) | teachers})

    def view_loss(self, pooled: list[dict[int, torch.Tensor]], active: dict[View, float], labels=None) -> torch.Tensor:
        """The weighted sum of the base loss over ``active`` views (plus alignment) from pooled layers."""
        teachers = {self.align_target(view) for view in active} if self.align_weight else set()
        needed = set(active) | teachers
        columns = {view: [self.views.scored(column, view) for column in pooled] for view in needed}
        terms = {self.views.name(view) or "/full": self.base(columns[view], None if self.compat else labels)
                 for view in active}
        total = sum(weight * terms[self.views.name(view) or "/full"] for view, weight in active.items())
        if self.compat:
            terms["/compat"] = sum(weight * self.compat(columns[view][0], view, labels)
                                   for view, weight in active.items())
            total = total + self.compat.weight * terms["/compat"]
        aligned = [(view, self.align_target(view)) for view in active if view != self.align_target(view)]
        if self.align_weight and aligned:
            terms["/align"] = sum(self.alignment(columns[view], columns[teacher]) for view, teacher in aligned)
            total = total + self.align_weight * terms["/align"]
        self.batches += 1
        return checked(total, terms, self._terms, self.batches, self.on_nonfinite)

    def pop_terms(self) -> dict[str, float]:
        """Each view's loss term (unweighted) and the alignment term, averaged over the batches since the last
        call: ``train/loss/d64``, ``train/loss/full``, ``train/loss/align``."""
        terms = {f"train/loss{name}": sum(values) / len(values) for name, values in self._terms.items()}
        self._terms.clear()
        return terms

    def align_target(self, view: View) -> View:
        """The full view for score alignment; the last layer at the view's own dim for embeddings."""
        if self.base.alignment == "scores":
            return self.views.full
        return View(self.views.n_layers, view.dim)

    def alignment(self, student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
        if self.base.alignment == "scores":
            target = F.softmax(self.base.scores(teacher).detach(), dim=-1)
            return F.kl_div(F.log_softmax(self.base.scores(student), dim=-1), target, reduction="batchmean")
        t = self.align_temperature
        return sum(F.kl_div(F.log_softmax(s / t, dim=-1), F.softmax(q.detach() / t, dim=-1), reduction="batchmean")
                   for s, q in zip(student, teacher)) / len(student)

    def get_config_dict(self) -> dict:
        return {**self.base.config(), "sample": self.sample, "align_weight": self.align_weight,
                "align_temperature": self.align_temperature,
                "views": {self.views.name(v) or "full": w for v, w in self.weights.items()}}
