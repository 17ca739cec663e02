"""View objectives (Matryoshka, 2-D, Starbucks, separate) against direct computations."""
import pytest
import torch

from embedbench.config import InfoNCEConfig, ObjectiveConfig, ScoredPairLossConfig, ViewsConfig
from embedbench.embedding.encoder import load_encoder
from embedbench.embedding.views import build_views, cut
from embedbench.losses import build_objective
from embedbench.losses.infonce import InfoNCE


def test_view_objective_is_weighted_sum_over_views(minilm, encoder):
    views = build_views(ViewsConfig(dims=[384, 64], weights=[1.0, 0.5]), encoder.n_layers, encoder.hidden_size)
    objective = build_objective(InfoNCEConfig(name="infonce"), encoder, views, ObjectiveConfig())
    anchors = ["what causes anemia", "effects of aspirin", "insulin resistance"]
    positives = ["Iron deficiency causes anemia.", "Aspirin thins the blood.", "Obesity drives insulin resistance."]
    features = [minilm.preprocess(anchors), minilm.preprocess(positives)]
    with torch.no_grad():
        loss = objective(features).item()
        q, p = (minilm(minilm.preprocess(t))["sentence_embedding"] for t in (anchors, positives))
    base = InfoNCE(0.05)
    expected = base([cut(q, 384), cut(p, 384)]) + 0.5 * base([cut(q, 64), cut(p, 64)])
    assert loss == pytest.approx(expected.item(), rel=1e-4)


def test_a_dot_product_models_loss_takes_inner_products_of_its_cuts_as_they_are(tiny_model_path):
    """DPR and Tevatron train on inner products (at temperature 1): the loss scores as evaluation ranks."""
    encoder = load_encoder(str(tiny_model_path), "cpu", similarity="dot")
    views = encoder.views(ViewsConfig(dims=[32, 8]))
    objective = build_objective(InfoNCEConfig(name="infonce", temperature=1.0), encoder, views, ObjectiveConfig())
    anchors, positives = ["what causes anemia", "aspirin", "insulin"], ["iron deficiency", "blood", "obesity"]
    model = encoder.model
    with torch.no_grad():
        loss = objective([model.preprocess(anchors), model.preprocess(positives)]).item()
        q, p = (model(model.preprocess(t))["sentence_embedding"] for t in (anchors, positives))
    base = InfoNCE(1.0)
    expected = base([q, p]) + base([q[:, :8], p[:, :8]])
    assert loss == pytest.approx(expected.item(), rel=1e-4)
    assert loss != pytest.approx((base([cut(q, 32), cut(p, 32)]) + base([cut(q, 8), cut(p, 8)])).item(), rel=1e-2)


def test_unknown_loss_lists_choices(encoder):
    from embedbench.errors import EmbedbenchError

    views = build_views(ViewsConfig(), 6, 384)
    with pytest.raises(EmbedbenchError, match=r"loss.name=nope: unknown; choose one of angle, .*cosent, .*infonce"):
        build_objective(InfoNCEConfig(name="nope"), encoder, views, ObjectiveConfig())


ANCHORS = ["what causes anemia", "effects of aspirin", "insulin resistance"]
POSITIVES = ["Iron deficiency causes anemia.", "Aspirin thins the blood.", "Obesity drives insulin resistance."]


def _objective(encoder, spec, objective):
    views = build_views(ViewsConfig(**spec), encoder.n_layers, encoder.hidden_size)
    return build_objective(InfoNCEConfig(name="infonce"), encoder, views, ObjectiveConfig(**objective), seed=3)


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


SENTENCES1 = ["A man is playing a guitar.", "A woman slices an onion.", "Kids play in the park."]
SENTENCES2 = ["A person plays an instrument.", "The stock market fell.", "Children are playing outside."]


def test_scored_pair_alignment_is_kl_of_embeddings_to_the_last_layer_at_the_same_dim(minilm, encoder):
    from embedbench.losses.scored import ScoredPairLoss

    views = build_views(ViewsConfig(pairs=[[3, 64], [6, 384]]), encoder.n_layers, encoder.hidden_size)
    objective = build_objective(ScoredPairLossConfig(name="cosent"), encoder, views,
                                ObjectiveConfig(align_weight=0.5, align_temperature=0.1))
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
