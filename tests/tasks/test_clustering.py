"""Clustering: equal to mteb's on a real sample; the stratified sample keeps label proportions."""
import pytest

from embedbench import mteb_reference
from embedbench.data.tables import LabelledTexts, read_line_aligned
from embedbench.tasks.clustering import ClusteringTask, stratified_sample
from tests.helpers import DATA, needs_data, scored

STACKOVERFLOW = DATA / "clustering" / "stackoverflow"


@needs_data
def test_clustering_equals_mteb_on_stackoverflow_sample(minilm, encoder):
    data = read_line_aligned(STACKOVERFLOW / "StackOverflow.txt", STACKOVERFLOW / "StackOverflow_gnd.txt")
    mteb_task = mteb_reference.clustering_task(data, 400, max_documents_per_cluster=1000)
    reference = mteb_reference.scores(minilm, mteb_task)
    task = ClusteringTask("stackoverflow", stratified_sample(data, 400, 42), round_size=1000)
    assert sorted(set(task.data.labels)) == sorted(set(data.labels)) and len(task.data.texts) == 400
    ours = task.evaluate(scored(encoder))
    assert ours["stackoverflow/v_measure"] == pytest.approx(reference["v_measure"], abs=2e-3)


def test_stratified_sample_keeps_label_proportions():
    data = LabelledTexts([f"t{i}" for i in range(400)], ["a"] * 300 + ["b"] * 100)
    sample = stratified_sample(data, 40, 42)
    assert (sample.labels.count("a"), sample.labels.count("b")) == (30, 10)
    assert stratified_sample(data, 40, 42) == sample and stratified_sample(data, None, 42) is data
