"""GradCache (Gao et al., 2021) for any view objective: large batches in the memory of a mini-batch.

sentence-transformers' ``CachedLossMixin`` runs the three steps (embed without graph, loss and
gradients w.r.t. the embeddings, re-embed each mini-batch with its cached gradient and the same
RNG state). What it caches here is not one embedding per text but every layer the step's views
read, concatenated, so Matryoshka and 2-D views share the one cached pass and receive exactly
the gradients of the uncached objective (tests/test_losses.py checks this to 1e-5).
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
from sentence_transformers.base.losses.gradcache import CachedLossMixin, RandContext, _create_minibatch

from embedbench.losses.views import ViewObjective


class CachedViewObjective(CachedLossMixin, ViewObjective):
    def __init__(self, *args, mini_batch_size: int = 32, **kwargs):
        ViewObjective.__init__(self, *args, **kwargs)
        self.mini_batch_size = int(mini_batch_size)
        self._active: dict = {}
        self._layers: list[int] = []

    def forward(self, sentence_features, labels=None) -> torch.Tensor:
        # views are drawn once per step (2DMSE samples): the replay in backward reuses this choice
        self._active = self.step_views()
        self._layers = self.layers_for(self._active)
        return self.forward_cached(sentence_features, labels)

    def embed_minibatch(self, sentence_feature, begin, end, with_grad, copy_random_state, random_state=None):
        features = _create_minibatch(sentence_feature, begin, end)
        with random_state if random_state is not None else nullcontext():
            with nullcontext() if with_grad else torch.no_grad():
                state = RandContext(*features.values()) if copy_random_state else None
                pooled = self.encoder.pooled(features, self._layers, through=self.model)
                return torch.cat([pooled[layer] for layer in self._layers], dim=1), state

    def calculate_loss(self, reps, labels=None, *, with_backward: bool = False) -> torch.Tensor:
        width = self.views.hidden_size
        pooled = [dict(zip(self._layers, torch.cat(column).split(width, dim=1))) for column in reps]
        loss = self.view_loss(pooled, self._active, labels)
        if with_backward:
            loss.backward()
            for column in reps:  # a skipped (non-finite) batch: zero gradients, so the replay changes nothing
                for rep in column:
                    if rep.grad is None:
                        rep.grad = torch.zeros_like(rep)
            loss = loss.detach()
        return loss

    def get_config_dict(self) -> dict:
        return {**super().get_config_dict(), "mini_batch_size": self.mini_batch_size}
