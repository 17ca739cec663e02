import pytest
import torch
import torch.nn.functional as F


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return [F.normalize(torch.randn(4, 8, generator=g), dim=-1) for _ in range(3)]
