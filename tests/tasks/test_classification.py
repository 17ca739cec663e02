"""Classification: equal to mteb's on a real slice; mteb's undersampling reproduced."""
import numpy as np
import pytest

from embedbench import mteb_reference
from embedbench.config import ViewsConfig
from embedbench.data.tables import LabelledTexts, read_labelled
from embedbench.embedding.views import build_views
from embedbench.tasks.classification import ClassificationTask, label_ids, undersample
from tests.helpers import DATA, needs_data, scored

BANKING = DATA / "classification" / "banking77"


def _keep_labels(data: LabelledTexts, labels: set) -> LabelledTexts:
    rows = [i for i, label in enumerate(data.labels) if label in labels]
    return LabelledTexts([data.texts[i] for i in rows], [data.labels[i] for i in rows])


@needs_data
def test_classification_equals_mteb_on_banking77_slice(minilm, encoder):
    train = read_labelled(BANKING / "train.csv", "text", "category")
    test = read_labelled(BANKING / "test.csv", "text", "category")
    intents = set(sorted(set(train.labels))[:6])
    train, test = _keep_labels(train, intents), _keep_labels(test, intents)
    reference = mteb_reference.scores(minilm, mteb_reference.classification_task(train, test, label_ids(train, test)))
    views = build_views(ViewsConfig(dims=[384, 64]), encoder.n_layers, encoder.hidden_size)
    ours = ClassificationTask("banking77", train, test).evaluate(scored(encoder, views))
    assert ours["banking77/accuracy"] == pytest.approx(reference["accuracy"], abs=2e-3)
    assert ours["banking77/f1"] == pytest.approx(reference["f1"], abs=2e-3)
    assert 0 < ours["banking77/accuracy/d64"] < 1


def test_undersampling_reshuffles_like_mteb():
    labels = [0, 0, 0, 1, 1, 1, 2]
    picks = undersample(labels, 3, 2, seed=42)
    order = list(range(7))
    for chosen in picks:  # experiment k: the order shuffled k times, each time by a fresh RandomState(42)
        np.random.RandomState(42).shuffle(order)
        first_two = [i for n, i in enumerate(order) if [labels[j] for j in order[:n]].count(labels[i]) < 2]
        assert chosen == first_two and sorted(labels[i] for i in chosen) == [0, 0, 1, 1, 2]
    assert picks[0] != picks[1]


def test_a_single_training_label_or_a_test_label_never_trained_on_is_refused_when_built():
    from embedbench.config import ClassificationTaskConfig
    from embedbench.errors import EmbedbenchError

    spec = ClassificationTaskConfig(name="intents", train="train.csv", test="test.csv")
    one = LabelledTexts([f"text {i}" for i in range(30)], ["billing"] * 30)
    with pytest.raises(EmbedbenchError, match="train.csv: every text has the label 'billing'; a classifier needs two"):
        ClassificationTask.load(spec, one, LabelledTexts(["x"], ["billing"]))
    two = LabelledTexts(["a", "b"], ["billing", "refund"])
    with pytest.raises(EmbedbenchError, match="test.csv: label 'login' never occurs in train.csv"):
        ClassificationTask.load(spec, two, LabelledTexts(["x"], ["login"]))
