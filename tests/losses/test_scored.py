"""CoSENT and AnglE on view embeddings."""
import math

import pytest
import torch

from embedbench.losses.scored import ScoredPairLoss


def _direct_cosent(a, b, labels, scale=20.0):
    """log(1 + sum over pairs (i, j) with label_i > label_j of exp(scale * (cos_j - cos_i)))."""
    cos = [float(x @ y) for x, y in zip(a, b)]
    terms = [math.exp(scale * (cos[j] - cos[i])) for i in range(len(cos)) for j in range(len(cos))
             if labels[i] > labels[j]]
    return math.log(1 + sum(terms))


def test_cosent_matches_its_formula(batch):

    a, b, _ = batch
    labels = torch.tensor([0.9, 0.1, 0.5, 0.3])
    assert ScoredPairLoss("cosent")([a, b], labels).item() == pytest.approx(_direct_cosent(a, b, labels), rel=1e-5)
    # AnglE orders by angle difference: same pairs ranked, a different value
    assert ScoredPairLoss("angle")([a, b], labels).item() != pytest.approx(_direct_cosent(a, b, labels), rel=1e-3)
