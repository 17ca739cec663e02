"""List-wise losses against their formulas: Margin-MSE, KL distillation, score MSE, Wasserstein."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedbench.losses.listwise import KLDistill, MarginMSE, ScoreMSE, Wasserstein, gaussian_w2


def _lists():
    torch.manual_seed(0)
    columns = [F.normalize(torch.randn(4, 8), dim=-1) for _ in range(4)]  # queries + 3 candidates
    labels = torch.tensor([[3.0, 1.0, 0.0], [2.0, 2.0, 0.5], [1.0, 0.0, 0.0], [0.2, 0.9, 0.1]])
    cosines = torch.stack([(columns[0] * c).sum(-1) for c in columns[1:]], dim=1)
    return columns, labels, cosines


def test_margin_mse_matches_its_formula():
    columns, labels, cos = _lists()
    direct = ((cos[:, :1] - cos[:, 1:]) - (labels[:, :1] - labels[:, 1:])).pow(2).mean()
    assert MarginMSE()(columns, labels).item() == pytest.approx(direct.item(), rel=1e-5)


def test_kl_distill_matches_its_formula():
    columns, labels, cos = _lists()
    t, teacher_t = 0.05, 0.5
    p_teacher = F.softmax(labels / teacher_t, dim=1)
    direct = (p_teacher * (p_teacher.log() - F.log_softmax(cos / t, dim=1))).sum(1).mean() * t ** 2
    assert KLDistill(t, teacher_t)(columns, labels).item() == pytest.approx(direct.item(), rel=1e-4)


def test_score_mse_matches_its_formula():
    columns, labels, cos = _lists()
    assert ScoreMSE()(columns, labels).item() == pytest.approx((cos - labels).pow(2).mean().item(), rel=1e-5)


def test_wasserstein_matches_the_gaussian_closed_form():
    import scipy.linalg

    columns, labels, cos = _lists()
    p = F.softmax(cos / 0.05, dim=1).double().numpy()
    q = F.softmax(labels / 0.5, dim=1).double().numpy()
    cov_p, cov_q = np.cov(p.T), np.cov(q.T)
    root = scipy.linalg.sqrtm(cov_p)
    direct = (((p.mean(0) - q.mean(0)) ** 2).sum() + np.trace(cov_p) + np.trace(cov_q)
              - 2 * np.trace(scipy.linalg.sqrtm(root @ cov_q @ root)).real)
    assert Wasserstein(0.05, 0.5)(columns, labels).item() == pytest.approx(direct, rel=1e-4, abs=1e-7)
    same = torch.softmax(torch.randn(6, 4), -1)
    assert gaussian_w2(same, same).item() == pytest.approx(0.0, abs=1e-6)
    leaf = columns[1].clone().requires_grad_()
    Wasserstein(0.05, 0.5)([columns[0], leaf, *columns[2:]], labels).backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0  # singular covariances: finite gradient
