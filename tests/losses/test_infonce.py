"""InfoNCE against a direct computation."""
import math

import pytest
import torch

from embedbench.losses.infonce import InfoNCE


def _direct_infonce(q, candidates, temperature):
    total = 0.0
    for i in range(len(q)):
        logits = [float(q[i] @ c) / temperature for c in candidates]
        total += -(logits[i] - math.log(sum(math.exp(x) for x in logits)))
    return total / len(q)


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
