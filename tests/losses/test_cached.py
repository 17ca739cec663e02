"""GradCache over view objectives: the uncached gradients, exactly."""
import pytest
import torch

from embedbench.config import InfoNCEConfig, ObjectiveConfig, ViewsConfig
from embedbench.embedding.views import build_views
from embedbench.losses import build_objective


def _param_grads(model, objective, features) -> dict:
    model.zero_grad()
    objective(features).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("views", [{}, {"dims": [32, 16, 8], "weights": [1.0, 0.5, 0.25]},
                                   {"layers": [1, 2], "dims": [32, 8]}], ids=["plain", "matryoshka", "2d"])
def test_gradcache_gives_the_uncached_gradients(tiny_model, views):
    from embedbench.embedding.encoder import LayerEncoder
    from embedbench.losses.cached import CachedViewObjective

    encoder = LayerEncoder(tiny_model)
    view_set = build_views(ViewsConfig(**views), encoder.n_layers, encoder.hidden_size)
    texts = [f"query {i} about topic {i % 5}" for i in range(12)]
    docs = [f"document {i} discussing topic {i % 5} at some length" for i in range(12)]
    negs = [f"unrelated passage number {i}" for i in range(12)]
    features = [tiny_model.preprocess(t) for t in (texts, docs, negs)]
    objective = ObjectiveConfig(align_weight=0.5)
    plain = build_objective(InfoNCEConfig(name="infonce", symmetric=True), encoder, view_set, objective)
    cached = build_objective(InfoNCEConfig(name="cached_infonce", symmetric=True, mini_batch_size=5), encoder,
                             view_set, objective)
    assert isinstance(cached, CachedViewObjective) and not isinstance(plain, CachedViewObjective)
    expected, got = _param_grads(tiny_model, plain, features), _param_grads(tiny_model, cached, features)
    assert expected.keys() == got.keys() and len(expected) > 10
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, atol=1e-5, rtol=1e-4), name
    with torch.no_grad():  # and the same loss value
        assert cached(features).item() == pytest.approx(plain(features).item(), rel=1e-5)

