"""STS: equal to mteb's on a real slice."""
import pytest

from embedbench import mteb_reference
from embedbench.data.tables import ScoredPairs, read_sts_benchmark
from embedbench.tasks.sts import STSTask
from tests.helpers import DATA, needs_data, scored


@needs_data
def test_sts_equals_mteb_on_stsb_slice(minilm, encoder):
    full = read_sts_benchmark(DATA / "sts" / "stsbenchmark" / "sts-test.csv")
    pairs = ScoredPairs(full.sentences1[:300], full.sentences2[:300], full.scores[:300])
    reference = mteb_reference.scores(minilm, mteb_reference.sts_task(pairs))
    ours = STSTask("stsb", pairs).evaluate(scored(encoder))
    assert ours["stsb/spearman"] == pytest.approx(reference["cosine_spearman"], abs=1e-4)
