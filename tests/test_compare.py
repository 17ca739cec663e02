"""`embedbench compare` over a real MLflow store: comparable runs only, full sets before slices, patterns,
formats, and a table that fits."""
import mlflow
import pytest

from embedbench.compare import compare, render, table


@pytest.fixture
def store(tmp_path):
    """Runs as the jobs log them: full-set and slice runs of one task set, one of another, a FAILED one."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    runs = [("full-a", "full", "scifact,stsb", 0.64, "0.05", "FINISHED"),
            ("full-b", "full", "scifact,stsb", 0.66, "0.02", "FINISHED"),
            ("slice-c", "slice", "scifact,stsb", 0.93, "0.05", "FINISHED"),  # a slice scores high: never above
            ("other-d", "full", "scifact", 0.70, "0.05", "FINISHED"),
            ("failed-e", "full", "scifact,stsb", 0.99, "0.10", "FAILED")]
    for name, scope, tasks, score, temperature, status in runs:
        with mlflow.start_run(experiment_id=experiment, run_name=name):
            mlflow.set_tags({"embedbench.scope": scope, "embedbench.tasks": tasks,
                             "embedbench.main": ",".join(f"{t}/{'ndcg_at_10' if t == 'scifact' else 'spearman'}"
                                                         for t in tasks.split(","))})
            mlflow.log_params({"loss.temperature": temperature, "seed": 42})
            mlflow.log_metrics({"scifact/ndcg_at_10": score, "scifact/ndcg_at_10/d64": score - 0.1,
                                "stsb/spearman": 0.8, "scifact/eval_s": 3.0})
            mlflow.end_run(status)
    return uri


def test_slices_and_other_task_sets_are_never_ranked_with_full_runs(store):
    text = compare(store, "e")
    blocks = text.split("\n\n")
    headings = blocks[0::2]
    assert set(headings[:2]) == {"scifact, stsb (full sets; 2 runs)", "scifact (full sets; 1 runs)"}
    assert headings[2] == "scifact, stsb (SLICES: not comparable with full-set scores; 1 runs)"  # slices last
    rows = blocks[1 + 2 * headings.index("scifact, stsb (full sets; 2 runs)")].splitlines()
    assert "full-b" in rows[1] and "full-a" in rows[2]  # best first within the group
    assert "failed-e" not in text and "seed" not in text  # FAILED hidden; constant params hidden
    assert "failed-e" in compare(store, "e", include_unfinished=True)


def test_metric_patterns_and_formats(store):
    csv = compare(store, "e", ["scifact/ndcg_at_10*"], fmt="csv").splitlines()
    assert csv[0].split(",")[:3] == ["run", "scifact/ndcg_at_10", "scifact/ndcg_at_10/d64"] and len(csv) == 5
    assert "stsb/spearman" not in csv[0]
    markdown = compare(store, "e", fmt="markdown")
    assert "**scifact, stsb (full sets; 2 runs)**" in markdown and "|---|" in markdown


def test_a_wide_table_drops_columns_from_the_right_and_names_them(store):
    from embedbench.compare import load_runs

    frame = table(load_runs(store, "e"))
    narrow = render(frame, width=40)
    assert all(len(line) <= 40 for line in narrow.splitlines()[:-1])
    assert narrow.splitlines()[-1].startswith("(") and "name" in narrow.splitlines()[-1]
