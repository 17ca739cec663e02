"""The one-pass encoder and view slicing against sentence-transformers and a direct computation."""
import pytest
import torch
import torch.nn.functional as F

from embedbench.errors import EmbedbenchError
from embedbench.views import View, build_views, cut

TEXTS = ["A girl is styling her hair.", "Microstructural development of human newborn cerebral white matter.",
         "short", "A group of men play soccer on the beach while the tide comes in slowly."]


def test_last_layer_equals_sentence_transformers_encode(minilm, encoder):
    reference = minilm.encode(TEXTS, convert_to_tensor=True)
    pooled = encoder.encode(TEXTS, [6], batch_size=3)[6]
    assert torch.allclose(cut(pooled, 384), reference, atol=1e-5)


def test_dim_cut_equals_sentence_transformers_truncate_dim(minilm, encoder):
    reference = F.normalize(minilm.encode(TEXTS, convert_to_tensor=True, truncate_dim=64), dim=-1)
    pooled = encoder.encode(TEXTS, [6])[6]
    assert torch.allclose(cut(pooled, 64), reference, atol=1e-5)


def test_inner_layer_is_masked_mean_of_that_hidden_state(minilm, encoder):
    features = minilm.preprocess(TEXTS)
    with torch.no_grad():
        out = minilm[0].model(input_ids=features["input_ids"], attention_mask=features["attention_mask"],
                              token_type_ids=features["token_type_ids"], output_hidden_states=True)
    mask = features["attention_mask"].unsqueeze(-1).float()
    direct = (out.hidden_states[3] * mask).sum(1) / mask.sum(1)
    pooled = encoder.encode(TEXTS, [3, 6])
    assert torch.allclose(pooled[3], direct, atol=1e-5)
    assert not torch.allclose(pooled[3], pooled[6], atol=1e-2)


def test_encode_returns_rows_in_input_order(encoder):
    forward = encoder.encode(TEXTS, [6], batch_size=2)[6]
    backward = encoder.encode(TEXTS[::-1], [6], batch_size=2)[6]
    assert torch.allclose(forward, backward.flip(0), atol=1e-5)


def test_bf16_encoding_stays_close_to_fp32(encoder):
    fp32 = cut(encoder.encode(TEXTS, [6])[6], 384)
    bf16 = cut(encoder.encode(TEXTS, [6], precision="bf16")[6], 384)
    assert F.cosine_similarity(fp32, bf16).min() > 0.999
    assert not torch.equal(fp32, bf16)  # it really ran in another precision


def test_view_names_and_order():
    views = build_views({"layers": [3, 6], "dims": [64, 384]}, 6, 384)
    assert views.views[0] == View(6, 384)
    assert [views.name(v) for v in views.views] == ["", "/d64", "/l3_d384", "/l3_d64"]
    assert views.layers == [3, 6]


def test_full_view_always_scored_but_only_declared_views_weighted():
    views = build_views({"dims": [64, 32], "weights": [2, 1]}, 6, 384)
    assert View(6, 384) in views.views
    assert dict(views.weights) == {View(6, 64): 2.0, View(6, 32): 1.0}


def test_pairs_and_all_layers():
    assert len(build_views({"layers": "all", "dims": [32, 384]}, 6, 384).views) == 12
    pairs = build_views({"pairs": [[1, 32], [6, 384]]}, 6, 384)
    assert set(pairs.views) == {View(1, 32), View(6, 384)}


@pytest.mark.parametrize("spec,message", [
    ({"dims": [512]}, "dim 512 is outside 1..384"),
    ({"layers": [7]}, "layer 7 is outside the encoder's 1..6 layers"),
    ({"layers": [0]}, "layer 0 is outside"),
    ({"dims": [64, 32], "weights": [1]}, "1 weight"),
])
def test_bad_views_are_refused(spec, message):
    with pytest.raises(EmbedbenchError, match=message):
        build_views(spec, 6, 384)


def test_cut_renormalises():
    x = torch.randn(4, 384)
    assert torch.allclose(cut(x, 32).norm(dim=-1), torch.ones(4))
    assert torch.allclose(cut(x, 32), F.normalize(x[:, :32], dim=-1))


def test_full_grid_on_a_plain_model_is_every_layer_times_the_dim_ladder():
    from embedbench.views import with_grid

    plain = build_views({}, 6, 384)
    grid = with_grid(plain, "full")
    assert len(grid.views) == 30
    assert {v.dim for v in grid.views} == {384, 256, 128, 64, 32}
    assert "/l3_d128" in {grid.name(v) for v in grid.views}
    assert grid.weights == plain.weights  # the objective never sees eval-only views


def test_grid_uses_the_models_dims_and_checks_bounds():
    from omegaconf import OmegaConf

    from embedbench.views import with_grid

    mrl = build_views({"dims": [384, 64]}, 6, 384)
    assert {v.dim for v in with_grid(mrl, "full").views} == {384, 64}
    assert with_grid(mrl, None) is mrl
    with pytest.raises(EmbedbenchError, match="eval.grid: layer 9"):
        with_grid(mrl, OmegaConf.create({"layers": [9]}))
    with pytest.raises(EmbedbenchError, match="eval.grid=diagonal"):
        with_grid(mrl, "diagonal")


def test_batches_cover_every_text_once_longest_first_with_a_token_budget(encoder):
    texts = ["word " * n for n in (3, 300, 40, 1, 120, 7)] * 20
    batches = encoder.batches(texts, batch_size=4)
    flat = [int(i) for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(texts)))
    lengths = encoder.token_lengths(texts)
    assert all(lengths[a] >= lengths[b] for a, b in zip(flat, flat[1:]))
    budget = 4 * encoder.model.max_seq_length
    assert all(len(b) <= max(4, budget // lengths[b[0]]) for b in batches)
    assert len(batches[-1]) > 4  # the shortest texts share one big batch
