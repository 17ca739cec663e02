"""What a finished run reports: suite averages and curves per view, the per-task table, results.json."""
import json

from embedbench.config import ViewsConfig
from embedbench.embedding.views import build_views
from embedbench.phases import Phases
from embedbench.report import curves, suite_average, view_table, write_results


def test_suite_average_is_the_mean_of_main_scores_per_view():
    views = build_views(ViewsConfig(dims=[384, 64]), 6, 384)
    metrics = {"a/acc": 0.5, "a/acc/d64": 0.25, "b/ap": 1.0, "b/ap/d64": 0.75, "b/other": 9.0}
    assert suite_average(metrics, {"a": "acc", "b": "ap"}, views, "lite") == {"lite/average": 0.75,
                                                                              "lite/average/d64": 0.5}
    # a model without views (BM25) has one result per task, named like a full view
    assert suite_average({"a/acc": 0.5, "b/ap": 1.0}, {"a": "acc", "b": "ap"}, None, "lite") == {"lite/average": 0.75}


def test_curves_follow_the_dims_layers_and_declared_diagonal():
    grid = build_views(ViewsConfig(layers="all", dims=[384, 64]), 6, 384)
    metrics = {f"t/m{grid.name(v)}": v.layer + v.dim / 1000 for v in grid.views}
    series = curves(metrics, grid, {"t": "m"})
    assert series["t/m/by_dim"] == {384: 6.384, 64: 6.064}
    assert series["t/m/by_layer"] == {layer: layer + 0.384 for layer in range(1, 7)}
    assert "t/m/by_diagonal" not in series  # nothing declared along a diagonal
    starbucks = build_views(ViewsConfig(pairs=[[1, 32], [3, 128], [6, 384]]), 6, 384)
    metrics = {f"t/m{starbucks.name(v)}": v.layer + v.dim / 1000 for v in starbucks.views}
    assert curves(metrics, starbucks, {"t": "m"})["t/m/by_diagonal"] == {1: 1.032, 2: 3.128, 3: 6.384}
    assert curves({"t/m": 1.0}, None, {"t": "m"}) == {}


def test_the_view_table_has_a_row_per_view_and_the_change_against_the_start():
    metrics = {"s/ndcg_at_10": 0.65, "s/ndcg_at_10/d64": 0.5, "s/recall_at_100": 0.9, "s/recall_at_100/d64": 0.8,
               "s/eval_s": 3.0, "s/ndcg_at_10/binary": 0.6, "s/search_qps/binary": 900.0}
    lines = view_table("s", metrics, {"s/ndcg_at_10": 0.6, "s/ndcg_at_10/d64": 0.55}, "ndcg_at_10")
    header, *rows = lines
    assert header.split() == ["view", "ndcg_at_10", "recall_at_100", "ndcg_at_10", "vs", "start"]
    assert [row.split()[0] for row in rows] == ["full", "d64", "binary"]  # costs (eval_s, search_qps) left out
    assert rows[0].split()[1:] == ["0.65000", "0.90000", "+0.05000"] and rows[1].split()[-1] == "-0.05000"


def test_phases_count_nested_time_once_in_the_inner_phase(monkeypatch):
    clock = iter([0.0, 10.0, 12.0, 15.0, 20.0, 21.0, 30.0, 31.0])  # a clock read at each start and end

    monkeypatch.setattr("embedbench.phases.time.perf_counter", lambda: next(clock))
    phases = Phases()  # starts at 0
    with phases("scoring t"):  # 10 .. 20
        with phases("encoding t"):  # 12 .. 15
            pass
    with phases("scoring t"):  # 21 .. 30: a second pass adds up
        pass
    assert phases.seconds == {"scoring t": 7.0 + 9.0, "encoding t": 3.0}
    assert phases.summary() == "scoring t 16.0 s, encoding t 3.0 s" and phases.elapsed == 31.0


def test_results_json_is_written_whole_and_leaves_no_temporary_file(tmp_path):
    write_results(tmp_path / "results.json", {"metrics": {"a/b": 1.0}})
    assert json.loads((tmp_path / "results.json").read_text()) == {"metrics": {"a/b": 1.0}}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
