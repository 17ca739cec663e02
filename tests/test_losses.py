"""Objectives against direct computations."""
import math

import pytest
import torch
import torch.nn.functional as F

from embedbench.losses import build_objective
from embedbench.losses.infonce import InfoNCE
from embedbench.views import build_views, cut


def _direct_infonce(q, candidates, temperature):
    total = 0.0
    for i in range(len(q)):
        logits = [float(q[i] @ c) / temperature for c in candidates]
        total += -(logits[i] - math.log(sum(math.exp(x) for x in logits)))
    return total / len(q)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return [F.normalize(torch.randn(4, 8, generator=g), dim=-1) for _ in range(3)]


def test_infonce_in_batch(batch):
    q, p, _ = batch
    assert InfoNCE(0.05)([q, p]).item() == pytest.approx(_direct_infonce(q, p, 0.05), rel=1e-5)


def test_infonce_with_hard_negatives(batch):
    q, p, n = batch
    expected = _direct_infonce(q, torch.cat([p, n]), 0.1)
    assert InfoNCE(0.1)([q, p, n]).item() == pytest.approx(expected, rel=1e-5)


def test_infonce_symmetric(batch):
    q, p, _ = batch
    expected = (_direct_infonce(q, p, 0.05) + _direct_infonce(p, q, 0.05)) / 2
    assert InfoNCE(0.05, symmetric=True)([q, p]).item() == pytest.approx(expected, rel=1e-5)


def test_view_objective_is_weighted_sum_over_views(minilm, encoder):
    from omegaconf import OmegaConf

    views = build_views({"dims": [384, 64], "weights": [1.0, 0.5]}, encoder.n_layers, encoder.hidden_size)
    objective = build_objective(OmegaConf.create({"name": "infonce", "temperature": 0.05}), encoder, views)
    anchors = ["what causes anemia", "effects of aspirin", "insulin resistance"]
    positives = ["Iron deficiency causes anemia.", "Aspirin thins the blood.", "Obesity drives insulin resistance."]
    features = [minilm.preprocess(anchors), minilm.preprocess(positives)]
    with torch.no_grad():
        loss = objective(features).item()
        q, p = (minilm(minilm.preprocess(t))["sentence_embedding"] for t in (anchors, positives))
    base = InfoNCE(0.05)
    expected = base([cut(q, 384), cut(p, 384)]) + 0.5 * base([cut(q, 64), cut(p, 64)])
    assert loss == pytest.approx(expected.item(), rel=1e-4)


def test_unknown_loss_lists_choices(encoder):
    from omegaconf import OmegaConf

    from embedbench.errors import EmbedbenchError

    views = build_views({}, 6, 384)
    with pytest.raises(EmbedbenchError, match=r"loss=nope: unknown; choose one of \['infonce'\]"):
        build_objective(OmegaConf.create({"name": "nope"}), encoder, views)
