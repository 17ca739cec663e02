"""Figures: drawn when the views call for them, skipped otherwise."""
from embedbench.config import ViewsConfig
from embedbench.embedding.views import build_views, with_grid
from embedbench.plots import diagonal_curve, dim_curve, grid_heatmap


def _metrics(views, value=0.5):
    return {f"t/m{views.name(v)}": value + v.layer / 100 + v.dim / 10000 for v in views.views}


def test_starbucks_diagonal_gets_a_curve_and_a_heatmap(tmp_path):
    views = with_grid(build_views(ViewsConfig(pairs=[[1, 32], [3, 128], [6, 384]]), 6, 384), "full")
    metrics = _metrics(views)
    assert diagonal_curve(metrics, views, {"t": "m"}, tmp_path / "d.png").stat().st_size > 1000
    assert grid_heatmap(metrics, views, "t", "m", tmp_path / "h.png").stat().st_size > 1000


def test_single_layer_models_get_only_the_dim_curve(tmp_path):
    views = build_views(ViewsConfig(dims=[384, 64, 32]), 6, 384)
    metrics = _metrics(views)
    assert dim_curve(metrics, views, {"t": "m"}, tmp_path / "c.png").stat().st_size > 1000
    assert diagonal_curve(metrics, views, {"t": "m"}, tmp_path / "d.png") is None
    assert grid_heatmap(metrics, views, "t", "m", tmp_path / "h.png") is None
    plain = build_views(ViewsConfig(), 6, 384)
    assert dim_curve(_metrics(plain), plain, {"t": "m"}, tmp_path / "p.png") is None
