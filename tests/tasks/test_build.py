"""Tasks built from typed configs with explicit folders, splits and limits, and checked up front."""
import pytest

from embedbench.cli import compose_config
from embedbench.composition import load
from embedbench.errors import EmbedbenchError
from embedbench.tasks import build_tasks
from tests.helpers import needs_data


def _tasks(overrides):
    cfg = load(compose_config("eval", overrides))
    return build_tasks(cfg.eval, cfg.data, list(cfg.index.values()), cfg.seed)


@needs_data
def test_mteb_lite_builds_five_task_types_with_their_main_scores():
    tasks = _tasks(["eval=mteb_lite", "eval.max_queries=5", "eval.max_docs=50"])
    assert {(type(t).__name__, *t.main_scores.items()) for t in tasks} == {
        ("RetrievalTask", ("scifact", "ndcg_at_10")), ("STSTask", ("stsb", "spearman")),
        ("ClassificationTask", ("banking77", "accuracy")), ("ClusteringTask", ("stackoverflow", "v_measure")),
        ("PairClassificationTask", ("mrpc", "ap"))}


@needs_data
def test_reranking_without_a_candidates_file_names_it():
    with pytest.raises(EmbedbenchError, match=r"scifact/candidates/test\.tsv: file not found"):
        _tasks(["eval=rerank"])


def test_retrieval_tasks_with_their_own_folders_are_named_by_their_keys(scifact_slice, tmp_path):
    import shutil

    other = shutil.copytree(scifact_slice, tmp_path / "other")
    tasks = _tasks([f"+eval.tasks.first.root={scifact_slice}", "+eval.tasks.first.type=retrieval",
                    f"+eval.tasks.second.root={other}", "+eval.tasks.second.type=retrieval", "eval=beir",
                    "eval.max_queries=3"])
    assert [t.name for t in tasks] == ["scifact", "first", "second"]
    assert all(len(t.dataset.queries) == 3 for t in tasks)


def test_a_task_folder_that_does_not_exist_names_the_task_key():
    with pytest.raises(EmbedbenchError, match=r"eval.tasks.mine.root=/no/such: no such folder"):
        _tasks(["+eval.tasks.mine.type=retrieval", "+eval.tasks.mine.root=/no/such", "eval=sts"])


def test_a_retrieval_task_on_non_beir_data_says_what_it_needs():
    with pytest.raises(EmbedbenchError, match=r"eval.tasks.beir: a retrieval task needs a BEIR folder: give it a "
                                              r"root, or a BEIR-format data= \(data=stsb is scored_pairs\)"):
        _tasks(["data=stsb", "eval=beir"])
