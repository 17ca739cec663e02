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
    with pytest.raises(EmbedbenchError, match=r"loss=nope: unknown; choose one of \[.*'cosent'.*'infonce'.*\]"):
        build_objective(OmegaConf.create({"name": "nope"}), encoder, views)


ANCHORS = ["what causes anemia", "effects of aspirin", "insulin resistance"]
POSITIVES = ["Iron deficiency causes anemia.", "Aspirin thins the blood.", "Obesity drives insulin resistance."]


def _objective(encoder, spec, objective_cfg):
    from omegaconf import OmegaConf

    views = build_views(spec, encoder.n_layers, encoder.hidden_size)
    return build_objective(OmegaConf.create({"name": "infonce", "temperature": 0.05}), encoder, views,
                           objective_cfg, seed=3)


def test_alignment_term_is_kl_of_view_scores_to_full_scores(minilm, encoder):
    objective = _objective(encoder, {"pairs": [[3, 64], [6, 384]]}, {"align_weight": 0.5})
    features = [minilm.preprocess(ANCHORS), minilm.preprocess(POSITIVES)]
    with torch.no_grad():
        loss = objective(features).item()
    q, p = (encoder.encode(t, [3, 6]) for t in (ANCHORS, POSITIVES))
    base = InfoNCE(0.05)
    full = [cut(q[6], 384), cut(p[6], 384)]
    small = [cut(q[3], 64), cut(p[3], 64)]
    teacher = torch.softmax(full[0] @ full[1].T / 0.05, dim=-1)
    student = torch.softmax(small[0] @ small[1].T / 0.05, dim=-1)
    kl = (teacher * (teacher.log() - student.log())).sum(-1).mean()
    assert loss == pytest.approx((base(full) + base(small) + 0.5 * kl).item(), rel=1e-4)


def test_2dmse_samples_one_layer_below_the_top_and_one_dim_per_step(encoder):
    objective = _objective(encoder, {"layers": "all", "dims": [384, 64]},
                           {"sample": "2dmse", "sample_dims": [8, 16, 32]})
    steps = [objective.step_views() for _ in range(50)]
    for views in steps:
        layers = sorted({v.layer for v in views})
        dims = sorted({v.dim for v in views})
        assert len(views) == 4 and layers[-1] == 6 and 1 <= layers[0] <= 5
        assert dims[-1] == 384 and dims[0] in (8, 16, 32)
    assert len({tuple(sorted(v)) for v in steps}) > 5  # it really samples
    again = _objective(encoder, {"layers": "all", "dims": [384, 64]}, {"sample": "2dmse", "sample_dims": [8, 16, 32]})
    assert [again.step_views() for _ in range(50)] == steps  # seeded


def test_separate_training_leaves_later_layers_without_gradient(minilm, encoder):
    objective = _objective(encoder, {"pairs": [[3, 384]]}, {})
    minilm.zero_grad(set_to_none=True)
    objective([minilm.preprocess(ANCHORS), minilm.preprocess(POSITIVES)]).backward()
    layers = minilm[0].model.encoder.layer
    assert layers[2].output.dense.weight.grad.abs().sum() > 0
    assert all(layers[i].output.dense.weight.grad is None for i in (3, 4, 5))
    minilm.zero_grad(set_to_none=True)


def test_bad_sampling_choice_is_refused(encoder):
    from embedbench.errors import EmbedbenchError

    with pytest.raises(EmbedbenchError, match="model.objective.sample=diagonal"):
        _objective(encoder, {}, {"sample": "diagonal"})


def _direct_cosent(a, b, labels, scale=20.0):
    """log(1 + sum over pairs (i, j) with label_i > label_j of exp(scale * (cos_j - cos_i)))."""
    cos = [float(x @ y) for x, y in zip(a, b)]
    terms = [math.exp(scale * (cos[j] - cos[i])) for i in range(len(cos)) for j in range(len(cos))
             if labels[i] > labels[j]]
    return math.log(1 + sum(terms))


def test_cosent_matches_its_formula(batch):
    from embedbench.losses.scored import ScoredPairLoss

    a, b, _ = batch
    labels = torch.tensor([0.9, 0.1, 0.5, 0.3])
    assert ScoredPairLoss("cosent")([a, b], labels).item() == pytest.approx(_direct_cosent(a, b, labels), rel=1e-5)
    # AnglE orders by angle difference: same pairs ranked, a different value
    assert ScoredPairLoss("angle")([a, b], labels).item() != pytest.approx(_direct_cosent(a, b, labels), rel=1e-3)


SENTENCES1 = ["A man is playing a guitar.", "A woman slices an onion.", "Kids play in the park."]
SENTENCES2 = ["A person plays an instrument.", "The stock market fell.", "Children are playing outside."]


def test_scored_pair_alignment_is_kl_of_embeddings_to_the_last_layer_at_the_same_dim(minilm, encoder):
    from omegaconf import OmegaConf

    from embedbench.losses.scored import ScoredPairLoss

    views = build_views({"pairs": [[3, 64], [6, 384]]}, encoder.n_layers, encoder.hidden_size)
    objective = build_objective(OmegaConf.create({"name": "cosent", "scale": 20.0}), encoder, views,
                                {"align_weight": 0.5, "align_temperature": 0.1})
    labels = torch.tensor([0.8, 0.1, 0.9])
    features = [minilm.preprocess(SENTENCES1), minilm.preprocess(SENTENCES2)]
    with torch.no_grad():
        loss = objective(features, labels).item()
    e1, e2 = (encoder.encode(t, [3, 6]) for t in (SENTENCES1, SENTENCES2))
    base = ScoredPairLoss("cosent")
    terms = base([cut(e1[6], 384), cut(e2[6], 384)], labels) + base([cut(e1[3], 64), cut(e2[3], 64)], labels)

    def kl(student, teacher):
        t, s = torch.softmax(teacher / 0.1, -1), torch.softmax(student / 0.1, -1)
        return (t * (t.log() - s.log())).sum(-1).mean()

    align = (kl(cut(e1[3], 64), cut(e1[6], 64)) + kl(cut(e2[3], 64), cut(e2[6], 64))) / 2
    assert loss == pytest.approx((terms + 0.5 * align).item(), rel=1e-4)


def _param_grads(model, objective, features) -> dict:
    model.zero_grad()
    objective(features).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("views", [{}, {"dims": [32, 16, 8], "weights": [1.0, 0.5, 0.25]},
                                   {"layers": [1, 2], "dims": [32, 8]}], ids=["plain", "matryoshka", "2d"])
def test_gradcache_gives_the_uncached_gradients(tiny_model, views):
    from omegaconf import OmegaConf

    from embedbench.encoder import LayerEncoder
    from embedbench.losses.cached import CachedViewObjective

    encoder = LayerEncoder(tiny_model)
    view_set = build_views(views, encoder.n_layers, encoder.hidden_size)
    texts = [f"query {i} about topic {i % 5}" for i in range(12)]
    docs = [f"document {i} discussing topic {i % 5} at some length" for i in range(12)]
    negs = [f"unrelated passage number {i}" for i in range(12)]
    features = [tiny_model.preprocess(t) for t in (texts, docs, negs)]
    loss_cfg = {"name": "infonce", "temperature": 0.05, "symmetric": True}
    plain = build_objective(OmegaConf.create(loss_cfg), encoder, view_set, {"align_weight": 0.5})
    cached = build_objective(OmegaConf.create({**loss_cfg, "mini_batch_size": 5}), encoder, view_set,
                             {"align_weight": 0.5})
    assert isinstance(cached, CachedViewObjective) and not isinstance(plain, CachedViewObjective)
    expected, got = _param_grads(tiny_model, plain, features), _param_grads(tiny_model, cached, features)
    assert expected.keys() == got.keys() and len(expected) > 10
    for name, grad in expected.items():
        assert torch.allclose(got[name], grad, atol=1e-5, rtol=1e-4), name
    with torch.no_grad():  # and the same loss value
        assert cached(features).item() == pytest.approx(plain(features).item(), rel=1e-5)
