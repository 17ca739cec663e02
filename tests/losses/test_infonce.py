"""InfoNCE against a direct computation."""
import math

import pytest
import torch

from embedbench.errors import EmbedbenchError
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


def test_infonce_without_in_batch_negatives_ranks_each_query_s_own_candidates(batch):
    q, p, n = batch
    expected = sum(-(float(q[i] @ p[i]) / 0.1 - math.log(math.exp(float(q[i] @ p[i]) / 0.1)
                                                         + math.exp(float(q[i] @ n[i]) / 0.1)))
                   for i in range(len(q))) / len(q)
    assert InfoNCE(0.1, in_batch_negatives=False)([q, p, n]).item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(EmbedbenchError, match="needs hard negatives"):
        InfoNCE(0.1, in_batch_negatives=False)([q, p])
    with pytest.raises(EmbedbenchError, match="do not apply"):
        InfoNCE(0.1, symmetric=True, in_batch_negatives=False)
