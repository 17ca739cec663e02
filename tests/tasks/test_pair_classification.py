"""Pair classification: equal to mteb's (max AP and cosine AP) on a real slice."""
import pytest

from embedbench import mteb_reference
from embedbench.data.tables import LabelledPairs, read_labelled_pairs
from embedbench.tasks.pair_classification import PairClassificationTask
from tests.helpers import DATA, needs_data, scored

MRPC = DATA / "pair_classification" / "mrpc" / "msr_paraphrase_test.txt"


@needs_data
def test_pair_classification_equals_mteb_on_mrpc_slice(minilm, encoder):
    full = read_labelled_pairs(MRPC, "#1 String", "#2 String", "Quality")
    pairs = LabelledPairs(full.sentences1[:300], full.sentences2[:300], full.labels[:300])
    reference = mteb_reference.scores(minilm, mteb_reference.pair_classification_task(pairs))
    ours = PairClassificationTask("mrpc", pairs).evaluate(scored(encoder))
    assert ours["mrpc/ap"] == pytest.approx(reference["max_ap"], abs=2e-3)
    assert ours["mrpc/cosine_ap"] == pytest.approx(reference["cosine_ap"], abs=2e-3)
