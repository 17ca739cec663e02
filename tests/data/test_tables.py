"""Table readers (labelled texts, labelled pairs, line-aligned files): real files and broken ones."""
import pytest

from embedbench.data.tables import LabelledTexts, read_labelled, read_labelled_pairs, read_line_aligned
from embedbench.errors import EmbedbenchError
from tests.helpers import DATA, needs_data


@needs_data
def test_real_files_read_with_their_quirks():
    banking = read_labelled(DATA / "classification" / "banking77" / "train.csv", "text", "category")
    assert len(banking.texts) == 10003 and len(set(banking.labels)) == 77
    assert any("\n" in t for t in banking.texts)  # quoted multi-line fields parsed by csv
    mrpc = read_labelled_pairs(DATA / "pair_classification" / "mrpc" / "msr_paraphrase_test.txt", "#1 String",
                               "#2 String", "Quality")
    assert (len(mrpc.labels), sum(mrpc.labels)) == (1725, 1147)  # BOM stripped, quotes kept, no trailing newline
    folder = DATA / "clustering" / "stackoverflow"
    so = read_line_aligned(folder / "StackOverflow.txt", folder / "StackOverflow_gnd.txt")
    assert len(so.texts) == 20000 and {so.labels.count(x) for x in set(so.labels)} == {1000}


@pytest.mark.parametrize("content, message", [
    ("text,category\nhello,a\nbye\n", r"train\.csv:3: expected 2 fields"),
    ("words,category\nhello,a\n", r"train\.csv:1: header has no column 'text'"),
    ("text,category\n", r"train\.csv: no rows"),
])
def test_bad_classification_table_is_named(tmp_path, content, message):
    (tmp_path / "train.csv").write_text(content)
    with pytest.raises(EmbedbenchError, match=message):
        read_labelled(tmp_path / "train.csv", "text", "category")


def test_bad_pair_label_and_misaligned_clustering_files_are_named(tmp_path):
    (tmp_path / "pairs.tsv").write_text("label\ts1\ts2\n1\ta\tb\nyes\tc\td\n")
    with pytest.raises(EmbedbenchError, match=r"pairs\.tsv:3: label 'yes' is not 0 or 1"):
        read_labelled_pairs(tmp_path / "pairs.tsv", "s1", "s2", "label")
    (tmp_path / "texts.txt").write_text("a\nb\nc\n")
    (tmp_path / "labels.txt").write_text("1\n2\n")
    with pytest.raises(EmbedbenchError, match=r"labels\.txt: 2 labels for 3 texts"):
        read_line_aligned(tmp_path / "texts.txt", tmp_path / "labels.txt")


def test_jsonl_labelled_table_and_its_errors(tmp_path):
    path = tmp_path / "clusters.jsonl"
    path.write_text('{"text": "how to sort a list", "label": 3}\n\n{"text": "pandas merge", "label": 7}\n')
    assert read_labelled(path) == LabelledTexts(["how to sort a list", "pandas merge"], ["3", "7"])
    path.write_text('{"text": "a", "label": 1}\n{"text": "b"}\n')
    with pytest.raises(EmbedbenchError, match=r"clusters\.jsonl:2: missing field 'label'"):
        read_labelled(path)
