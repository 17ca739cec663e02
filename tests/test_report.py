"""What a finished run reports: suite averages per view, the summary lines, results.json written whole."""
import json

from embedbench.config import ViewsConfig
from embedbench.embedding.views import build_views
from embedbench.report import suite_average, summary, write_results


def test_suite_average_is_the_mean_of_main_scores_per_view():
    views = build_views(ViewsConfig(dims=[384, 64]), 6, 384)
    metrics = {"a/acc": 0.5, "a/acc/d64": 0.25, "b/ap": 1.0, "b/ap/d64": 0.75, "b/other": 9.0}
    assert suite_average(metrics, {"a": "acc", "b": "ap"}, views, "lite") == {"lite/average": 0.75,
                                                                              "lite/average/d64": 0.5}
    # a model without views (BM25) has one result per task, named like a full view
    assert suite_average({"a/acc": 0.5, "b/ap": 1.0}, {"a": "acc", "b": "ap"}, None, "lite") == {"lite/average": 0.75}


def test_summary_gives_every_view_of_each_main_metric_on_one_line():
    metrics = {"scifact/ndcg_at_10": 0.65, "scifact/ndcg_at_10/d64": 0.5, "scifact/recall_at_100": 0.9,
               "stsb/spearman": 0.82}
    assert summary({"scifact": "ndcg_at_10", "stsb": "spearman"}, metrics).splitlines() == [
        "scifact/ndcg_at_10: full=0.65000  d64=0.50000", "stsb/spearman: full=0.82000"]


def test_results_json_is_written_whole_and_leaves_no_temporary_file(tmp_path):
    write_results(tmp_path / "results.json", {"metrics": {"a/b": 1.0}})
    assert json.loads((tmp_path / "results.json").read_text()) == {"metrics": {"a/b": 1.0}}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
