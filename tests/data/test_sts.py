"""The STS Benchmark reader: the real file (quotes inside sentences) and a broken line."""
import pytest

from embedbench.data.sts import read_sts
from embedbench.errors import EmbedbenchError
from tests.helpers import DATA, needs_data


@needs_data
def test_real_stsb_test_with_quotes():
    pairs = read_sts(DATA / "sts" / "stsbenchmark" / "sts-test.csv")
    assert len(pairs.scores) == 1379
    assert any('"' in s for s in pairs.sentences1 + pairs.sentences2)
    assert min(pairs.scores) >= 0 and max(pairs.scores) <= 5


def test_sts_bad_line_is_named(tmp_path):
    path = tmp_path / "sts.csv"
    path.write_text("g\tf\t2012\t1\t2.5\ta\tb\ng\tf\t2012\t2\tbad\ta\tb\n")
    with pytest.raises(EmbedbenchError, match=r"sts\.csv:2: score 'bad'"):
        read_sts(path)
