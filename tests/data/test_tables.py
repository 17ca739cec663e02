"""Table readers with column mapping: real files, each format, header or positions, and every way a file can
fail to fit its mapping (one line naming file, line and column, never a score)."""
import gzip

import pytest

from embedbench.data.tables import (
    LabelledTexts,
    Layout,
    read_labelled,
    read_labelled_pairs,
    read_line_aligned,
    read_scored_pairs,
    read_sts_benchmark,
)
from embedbench.errors import EmbedbenchError
from tests.helpers import DATA, needs_data

SENTENCES = [f"sentence number {i} about {topic}" for i, topic in enumerate(["cats", "dogs", "rain"] * 10)]


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
    stsb = read_sts_benchmark(DATA / "sts" / "stsbenchmark" / "sts-test.csv")
    assert len(stsb.scores) == 1379 and min(stsb.scores) >= 0 and max(stsb.scores) <= 5
    assert any('"' in s for s in stsb.sentences1 + stsb.sentences2)  # quotes inside tab-separated fields


def sick_file(path, rows):
    """SICK's layout: a header, tab-separated, the score in the fifth column and labels around it."""
    lines = ["pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tentailment_AB"]
    lines += [f"{i}\t{a}\t{b}\tNEUTRAL\t{score}\tA_neutral_B" for i, (a, b, score) in enumerate(rows, 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_columns_by_name_read_the_header_and_by_position_do_not(tmp_path):
    rows = [(SENTENCES[i], SENTENCES[i + 1], 1 + i % 5) for i in range(25)]
    path = sick_file(tmp_path / "SICK.txt", rows)
    pairs = read_scored_pairs(path, "sentence_A", "sentence_B", "relatedness_score", min_score=1, max_score=5)
    assert pairs.sentences1[0] == rows[0][0] and pairs.scores[:3] == [1.0, 2.0, 3.0] and len(pairs.scores) == 25
    headerless = tmp_path / "headerless.tsv"
    headerless.write_text("".join(line + "\n" for line in path.read_text().splitlines()[1:]))
    assert read_scored_pairs(headerless, 1, 2, 4, min_score=1, max_score=5) == pairs
    with pytest.raises(EmbedbenchError, match=r"SICK\.txt:1: score column 4: 'relatedness_score' is not a number"):
        read_scored_pairs(path, 1, 2, 4, min_score=1, max_score=5)  # positions: the header is read as a row


def test_headerless_sick_under_the_sts_benchmark_columns_stops(tmp_path):
    """Field 5 of SICK is a number, so only the text check keeps its label columns from being scored."""
    path = sick_file(tmp_path / "SICK.txt", [(SENTENCES[i], SENTENCES[i + 1], 3.5) for i in range(25)])
    path.write_text("".join(line + "\tA_neutral_B\n" for line in path.read_text().splitlines()[1:]))
    with pytest.raises(EmbedbenchError, match=r"SICK\.txt:1: text column 5 holds 1 distinct values over 25 rows "
                                              r"\('A_neutral_B', \.\.\.\): labels, not text"):
        read_scored_pairs(path, 5, 6, 4, Layout("tsv"))


@pytest.mark.parametrize("mapping, message", [
    (("sentence_A", "sentence_B", "sentence_A"), r"SICK\.txt:2: score column 'sentence_A': 'sentence number 0 "),
    (("pair_ID", "sentence_B", "relatedness_score"), r"SICK\.txt:2: text column 'pair_ID' holds numbers \('1'\)"),
    (("sentence_A", "sentence_B", "relatedness"), r"SICK\.txt:1: header has no column 'relatedness' \(columns: "
                                                   r"pair_ID, sentence_A"),
    (("sentence_A", "sentence_B", 9), r"SICK\.txt:2: 6 field\(s\); column 9 needs at least 10"),
])
def test_a_mapping_that_does_not_fit_names_file_line_and_column(tmp_path, mapping, message):
    path = sick_file(tmp_path / "SICK.txt", [(SENTENCES[i], SENTENCES[i + 1], 2.5) for i in range(25)])
    with pytest.raises(EmbedbenchError, match=message):
        read_scored_pairs(path, *mapping, min_score=1, max_score=5)


def test_scores_outside_the_range_and_formats_by_extension(tmp_path):
    path = sick_file(tmp_path / "SICK.txt", [("a b", "c d", 0.5)])
    with pytest.raises(EmbedbenchError, match=r"SICK\.txt:2: .* 0\.5 is outside \[1, 5\] \(set min_score"):
        read_scored_pairs(path, "sentence_A", "sentence_B", "relatedness_score", min_score=1, max_score=5)
    odd = tmp_path / "pairs.dat"
    odd.write_text("a\tb\t1\nc\td\t2\n")
    with pytest.raises(EmbedbenchError, match=r"pairs\.dat: cannot tell the format from the extension '\.dat'"):
        read_scored_pairs(odd, 0, 1, 2)
    assert read_scored_pairs(odd, 0, 1, 2, Layout("tsv")).scores == [1.0, 2.0]
    quoted = tmp_path / "pairs.csv"
    quoted.write_text('s1,s2,score\n"a, quoted",b,4\nc,d,3\n')
    assert read_scored_pairs(quoted, "s1", "s2", "score").sentences1 == ["a, quoted", "c"]
    quoted.write_text('s1,s2,score\na,b,4\nc,d,4\n')  # one score for all: no ranking to correlate with
    with pytest.raises(EmbedbenchError, match=r"pairs\.csv: every pair has the score 4\.0; a ranking of the pairs"):
        read_scored_pairs(quoted, "s1", "s2", "score")
    with pytest.raises(EmbedbenchError, match=r"column 's1' is a name, but the file is read without a header"):
        read_scored_pairs(quoted, "s1", 1, 2, Layout(header=False))


def test_gzip_compressed_tables_read_as_the_plain_files(tmp_path):
    rows = 's1,s2,score\n"a, quoted",b,4\nc,d,3\n'
    (tmp_path / "pairs.csv.gz").write_bytes(gzip.compress(rows.encode()))
    (tmp_path / "texts.txt.gz").write_bytes(gzip.compress(b"one\ntwo\n"))
    (tmp_path / "labels.txt").write_text("a\nb\n")
    assert read_scored_pairs(tmp_path / "pairs.csv.gz", "s1", "s2", "score").sentences1 == ["a, quoted", "c"]
    assert read_line_aligned(tmp_path / "texts.txt.gz", tmp_path / "labels.txt").texts == ["one", "two"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("s1,s2,score\na,b,4\ncaf\xe9,d,3\n".encode("latin-1"))
    with pytest.raises(EmbedbenchError, match=r"latin\.csv:3: not UTF-8 text \(byte 0xe9\); save it as UTF-8$"):
        read_scored_pairs(latin, "s1", "s2", "score")


def test_labels_and_texts_swapped_are_refused(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text,category\n" + "".join(f"{s},{s.split()[-1]}\n" for s in SENTENCES))
    assert len(set(read_labelled(path, "text", "category").labels)) == 3
    with pytest.raises(EmbedbenchError, match=r"train\.csv:2: text column 'category' holds 3 distinct values"):
        read_labelled(path, "category", "text")
    with pytest.raises(EmbedbenchError, match=r"train\.csv:2: label column 'text' holds 30 distinct values over "
                                              r"30 rows .*: text, not labels"):
        read_labelled(path, "text", "text")


@pytest.mark.parametrize("content, message", [
    ("text,category\nhello,a\nbye\n", r"train\.csv:3: 1 field\(s\); column 'category' needs at least 2"),
    ("words,category\nhello,a\n", r"train\.csv:1: header has no column 'text'"),
    ("text,category\n", r"train\.csv: no rows"),
    ("text\tcategory\nhello\ta\n", r"train\.csv:1: header has no column 'text' \(columns: text\tcategory\); its "
                                    r"fields are split by tabs: format: tsv$"),
])
def test_bad_classification_table_is_named(tmp_path, content, message):
    (tmp_path / "train.csv").write_text(content)
    with pytest.raises(EmbedbenchError, match=message):
        read_labelled(tmp_path / "train.csv", "text", "category")


def test_header_names_are_matched_without_the_spaces_around_them(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_text("question, answer ,score\nHow do cells divide?, By mitosis. ,4\nWhat is DNA?,A molecule.,2\n")
    pairs = read_scored_pairs(path, "question", "answer", "score")
    assert pairs.sentences2 == [" By mitosis. ", "A molecule."] and pairs.scores == [4.0, 2.0]  # fields as written


def test_a_tab_separated_csv_file_read_as_csv_is_told_its_format(tmp_path):
    path = tmp_path / "sts-test.csv"  # STS Benchmark's layout: a .csv name, tab-separated, no header
    path.write_text("main-captions\tMSRvid\t2012test\t0024\t2.500\tA girl is styling her hair.\tA girl is brushing "
                    "her hair.\nmain-captions\tMSRvid\t2012test\t0033\t3.600\tMen play soccer.\tBoys play soccer.\n")
    with pytest.raises(EmbedbenchError, match=r"sts-test\.csv:1: 1 field\(s\); column 6 needs at least 7; its fields "
                                              r"are split by tabs: format: tsv$"):
        read_scored_pairs(path, 5, 6, 4)
    assert read_scored_pairs(path, 5, 6, 4, Layout("tsv")).scores == [2.5, 3.6]


def test_bad_pair_label_and_misaligned_clustering_files_are_named(tmp_path):
    (tmp_path / "pairs.tsv").write_text("label\ts1\ts2\n1\ta\tb\nyes\tc\td\n")
    with pytest.raises(EmbedbenchError, match=r"pairs\.tsv:3: label column 'label': 'yes' is not 0 or 1"):
        read_labelled_pairs(tmp_path / "pairs.tsv", "s1", "s2", "label")
    (tmp_path / "texts.txt").write_text("a\nb\nc\n")
    (tmp_path / "labels.txt").write_text("1\n2\n")
    with pytest.raises(EmbedbenchError, match=r"labels\.txt: 2 labels for 3 texts"):
        read_line_aligned(tmp_path / "texts.txt", tmp_path / "labels.txt")


def test_jsonl_labelled_table_and_its_errors(tmp_path):
    path = tmp_path / "clusters.jsonl"
    path.write_text('{"text": "how to sort a list", "label": 3}\n\n{"text": "pandas merge", "label": 7}\n')
    assert read_labelled(path) == LabelledTexts(["how to sort a list", "pandas merge"], ["3", "7"])
    with pytest.raises(EmbedbenchError, match=r"clusters\.jsonl: column 0: columns are named here"):
        read_labelled(path, 0, "label")
    path.write_text('{"text": "a", "label": 1}\n{"text": "b"}\n')
    with pytest.raises(EmbedbenchError, match=r"clusters\.jsonl:2: missing field 'label'"):
        read_labelled(path)
    path.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": null}\n')  # not a class named 'None'
    with pytest.raises(EmbedbenchError, match=r"clusters\.jsonl:2: field 'label' is null"):
        read_labelled(path)
    path.write_text('{"text": ["a", "b"], "label": 1}\n')  # a list column mapped as text: no "['a', 'b']"
    with pytest.raises(EmbedbenchError, match=r"clusters\.jsonl:1: field 'text' holds a list, not a text or a number"):
        read_labelled(path)


def test_line_aligned_files_split_at_line_breaks_only(tmp_path):
    # U+2028 and U+0085 inside scraped text are not line ends; a BOM and CRLF are what Windows editors write
    (tmp_path / "texts.txt").write_bytes("\ufeffone\u2028line\r\nnext\x85line\r\nlast\r\n".encode())
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    data = read_line_aligned(tmp_path / "texts.txt", tmp_path / "labels.txt")
    assert data.texts == ["one\u2028line", "next\x85line", "last"] and data.labels == ["a", "b", "c"]


def test_eval_tables_from_a_hugging_face_dataset_read_as_the_files_they_equal(tmp_path):
    """mteb's STS and classification sets as the Hub serves them (save_to_disk: the same tables, offline)."""
    from datasets import Dataset, DatasetDict

    from embedbench.config import ClassificationTaskConfig, ClusteringTaskConfig, DataConfig, STSTaskConfig
    from embedbench.tasks import build_task
    from embedbench.tasks.base import Limits

    def build(spec):
        return build_task("t", spec, DataConfig(name="x"), Limits(), ())

    pairs = {"sentence1": ["a cat sleeps", "rain falls", "dogs bark"], "sentence2": ["a cat naps", "sun", "dogs"],
             "score": [4.8, 0.4, 3.0]}
    (tmp_path / "sts.jsonl").write_text("".join(
        f'{{"sentence1": "{a}", "sentence2": "{b}", "score": {s}}}\n' for a, b, s in zip(*pairs.values())))
    DatasetDict({"test": Dataset.from_dict(pairs)}).save_to_disk(tmp_path / "stsb")
    columns = {"text1_column": "sentence1", "text2_column": "sentence2", "score_column": "score"}
    from_file = build(STSTaskConfig(path=str(tmp_path / "sts.jsonl"), **columns)).pairs
    assert build(STSTaskConfig(path="test", hub=str(tmp_path / "stsb"), **columns)).pairs == from_file

    texts = [f"how do I {verb} my card" for verb in ("block", "top up", "freeze", "activate")]
    splits = {split: Dataset.from_dict({"text": texts, "label": [0, 1, 0, 1]}) for split in ("train", "test")}
    DatasetDict(splits).save_to_disk(tmp_path / "intents" / "en")
    for split in ("train", "test"):
        (tmp_path / f"{split}.csv").write_text("text,label\n" + "".join(f"{t},{i % 2}\n" for i, t in enumerate(texts)))
    hub = build(ClassificationTaskConfig(train="train", test="test", hub=str(tmp_path / "intents"), hub_config="en"))
    files = build(ClassificationTaskConfig(train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv")))
    assert (hub.train, hub.test) == (files.train, files.test)
    DatasetDict({"train": splits["train"].select([0, 2]), "test": splits["test"]}).save_to_disk(tmp_path / "one")
    with pytest.raises(EmbedbenchError, match=r"^eval\.tasks\.t\.hub=\S+one\[train\]: every text has the label '0'"):
        build(ClassificationTaskConfig(train="train", test="test", hub=str(tmp_path / "one")))
    with pytest.raises(EmbedbenchError, match=r"^eval\.tasks\.t\.hub=\S+stsb\[test\]: column 5: columns are named"):
        build(STSTaskConfig(path="test", hub=str(tmp_path / "stsb")))  # STS Benchmark's positions: a file's layout
    with pytest.raises(EmbedbenchError, match=r"^eval\.tasks\.t: with hub, path names the split to read"):
        build(ClusteringTaskConfig(texts="texts.txt", labels="labels.txt", hub=str(tmp_path / "stsb")))
