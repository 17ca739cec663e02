"""Views: names, order, weights, grids and the re-normalised cut."""
import pytest
import torch
import torch.nn.functional as F

from embedbench.config import ViewsConfig
from embedbench.embedding.views import View, build_views, cut, with_grid
from embedbench.errors import EmbedbenchError


def test_view_names_and_order():
    views = build_views(ViewsConfig(layers=[3, 6], dims=[64, 384]), 6, 384)
    assert views.views[0] == View(6, 384)
    assert [views.name(v) for v in views.views] == ["", "/d64", "/l3_d384", "/l3_d64"]
    assert views.layers == [3, 6]


def test_full_view_always_scored_but_only_declared_views_weighted():
    views = build_views(ViewsConfig(dims=[64, 32], weights=[2, 1]), 6, 384)
    assert View(6, 384) in views.views
    assert dict(views.weights) == {View(6, 64): 2.0, View(6, 32): 1.0}


@pytest.mark.parametrize("layers, width, dims", [(6, 384, [384, 256, 128, 64, 32]),
                                                (12, 768, [768, 512, 256, 128, 64, 32]), (3, 64, [64, 32])])
def test_the_dim_ladder_follows_the_encoders_width_and_weights_every_rung(layers, width, dims):
    views = build_views(ViewsConfig(dims="ladder"), layers, width)
    assert [v.dim for v in views.views] == dims and views.views[0] == View(layers, width)
    assert dict(views.weights) == {View(layers, dim): 1.0 for dim in dims}  # the full width is a term too


def test_full_in_a_dim_list_is_the_encoders_width_in_views_and_grids():
    separate = ViewsConfig(layers=[3], dims=["full", 256, 192, 64], weights=[1, 0, 0, 0])  # model=separate's shape
    for width in (384, 768):
        views = build_views(separate, 12, width)
        assert dict(views.weights)[View(3, width)] == 1 and {v.dim for v in views.views} == {width, 256, 192, 64}
    grid = with_grid(build_views(ViewsConfig(), 12, 768), {"layers": [2], "dims": ["full", 32]})
    assert {View(2, 768), View(2, 32)} <= set(grid.views)


def test_a_diagonal_written_for_another_encoder_does_not_train_the_full_view():
    minilm = [[1, 32], [2, 64], [3, 128], [4, 192], [5, 256], [6, 384]]  # model=starbucks
    assert build_views(ViewsConfig(pairs=minilm), 6, 384).trains_full
    assert not build_views(ViewsConfig(pairs=minilm), 12, 768).trains_full
    assert not build_views(ViewsConfig(dims=[384, 64], weights=[0, 1]), 6, 384).trains_full
    assert build_views(ViewsConfig(dims="ladder"), 12, 768).trains_full


def test_pairs_and_all_layers():
    assert len(build_views(ViewsConfig(layers="all", dims=[32, 384]), 6, 384).views) == 12
    pairs = build_views(ViewsConfig(pairs=[[1, 32], [6, 384]]), 6, 384)
    assert set(pairs.views) == {View(1, 32), View(6, 384)}


@pytest.mark.parametrize("spec,message", [
    ({"dims": [512]}, "dim 512 is outside 1..384"),
    ({"layers": [7]}, "layer 7 is outside the encoder's 1..6 layers"),
    ({"layers": [0]}, "layer 0 is outside"),
    ({"dims": [64, 32], "weights": [1]}, "1 weight"),
])
def test_bad_views_are_refused(spec, message):
    with pytest.raises(EmbedbenchError, match=message):
        build_views(ViewsConfig(**spec), 6, 384)


def test_cut_renormalises():
    x = torch.randn(4, 384)
    assert torch.allclose(cut(x, 32).norm(dim=-1), torch.ones(4))
    assert torch.allclose(cut(x, 32), F.normalize(x[:, :32], dim=-1))


def test_full_grid_on_a_plain_model_is_every_layer_times_the_dim_ladder():
    plain = build_views(ViewsConfig(), 6, 384)
    grid = with_grid(plain, "full")
    assert len(grid.views) == 30
    assert {v.dim for v in grid.views} == {384, 256, 128, 64, 32}
    assert "/l3_d128" in {grid.name(v) for v in grid.views}
    assert grid.weights == plain.weights  # the objective never sees eval-only views


def test_grid_uses_the_models_dims_and_checks_bounds():

    mrl = build_views(ViewsConfig(dims=[384, 64]), 6, 384)
    assert {v.dim for v in with_grid(mrl, "full").views} == {384, 64}
    assert with_grid(mrl, None) is mrl
    with pytest.raises(EmbedbenchError, match="eval.grid: layer 9"):
        with_grid(mrl, {"layers": [9]})


@pytest.mark.parametrize("unit_length, similarity, norms", [(True, "cosine", [1, 1]), (True, "dot", [1, 1]),
                                                            (False, "cosine", [1, 1]), (False, "dot", [13, 5])])
def test_a_view_is_scored_at_unit_length_unless_the_model_is_an_unnormalised_dot_model(unit_length, similarity,
                                                                                       norms):
    views = build_views(ViewsConfig(dims=[3, 2]), 1, 3, unit_length, similarity)
    pooled = {1: torch.tensor([[3.0, 4.0, 12.0]])}  # the model's output before any Normalize module
    assert [views.scored(pooled, view).norm().item() for view in views.views] == pytest.approx(norms)
    features = [views.features(pooled, view).norm().item() for view in views.views]
    assert features == pytest.approx([1, 1] if unit_length else [13, 5])  # what classifiers and k-means see
