"""The BEIR reader: real files, and the ways real files go wrong."""
import bz2
import gzip
import json
import lzma
import re
import shutil

import pytest

from embedbench.data.beir import load_beir, load_qrels, resolve_root, subsample
from embedbench.errors import EmbedbenchError
from tests.helpers import SCIFACT, beir_folder, needs_data


@needs_data
def test_real_scifact_counts_and_crlf_qrels():
    ds = load_beir("scifact", SCIFACT, "test")
    assert len(ds.corpus) == 5183 and len(ds.queries) == 300
    assert sum(len(d) for d in ds.qrels.values()) == 339
    assert all("\r" not in doc for docs in ds.qrels.values() for doc in docs)


@needs_data
def test_doc_text_joins_title_and_body_like_mteb():
    ds = load_beir("scifact", SCIFACT, "test")
    doc_id = next(iter(ds.corpus))
    assert ds.doc_text(doc_id) == f"{ds.corpus[doc_id]['title']} {ds.corpus[doc_id]['text']}".strip()


@pytest.fixture
def tiny(tmp_path):
    return beir_folder(tmp_path / "tiny", {"d1": {"title": "T", "text": "one"}, "d2": {"title": "", "text": "two"}},
                      {"q1": "query"}, {"q1": {"d1": 1}})


def test_crlf_everywhere_is_read(tiny):
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        path = tiny / name
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    ds = load_beir("tiny", tiny, "test")
    assert ds.qrels == {"q1": {"d1": 1}} and ds.doc_text("d2") == "two"


def test_a_byte_order_mark_before_any_file_is_dropped(tiny):
    (tiny / "qrels" / "test.tsv").write_text("q1\td1\t1\n")  # headerless: the first line is a judgement
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        path = tiny / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    ds = load_beir("tiny", tiny, "test")
    assert ds.qrels == {"q1": {"d1": 1}} and ds.queries == {"q1": "query"} and sorted(ds.corpus) == ["d1", "d2"]


def test_null_titles_and_texts_are_empty_and_other_non_strings_are_named(tiny):
    corpus = tiny / "corpus.jsonl"
    with open(corpus, "a") as fh:
        fh.write('{"_id": "d3", "title": null, "text": null}\n')
    assert load_beir("tiny", tiny, "test").doc_text("d3") == ""
    with open(corpus, "a") as fh:
        fh.write('{"_id": "d4", "title": 2019, "text": "four"}\n')
    with pytest.raises(EmbedbenchError, match=r"corpus\.jsonl:4: field 'title' is 2019, not a string"):
        load_beir("tiny", tiny, "test")
    corpus.write_text(corpus.read_text().replace("2019", '"2019"'))
    (tiny / "queries.jsonl").write_text('{"_id": "q1", "text": null}\n')  # nothing to ask
    with pytest.raises(EmbedbenchError, match=r"queries\.jsonl:1: field 'text' is null, not a string"):
        load_beir("tiny", tiny, "test")


def test_broken_json_line_is_named(tiny):
    with open(tiny / "corpus.jsonl", "a") as fh:
        fh.write('{"_id": "d3", "text": \n')
    with pytest.raises(EmbedbenchError, match=r"corpus\.jsonl:3: not valid JSON"):
        load_beir("tiny", tiny, "test")


def test_missing_file_is_named(tiny):
    (tiny / "queries.jsonl").unlink()
    with pytest.raises(EmbedbenchError, match=r"queries\.jsonl: file not found"):
        load_beir("tiny", tiny, "test")


def test_a_missing_split_is_named_with_the_splits_the_folder_judges_before_the_corpus_is_read(tiny):
    (tiny / "qrels" / "train.tsv.gz").write_bytes(gzip.compress((tiny / "qrels" / "test.tsv").read_bytes()))
    (tiny / "corpus.jsonl").write_text("not json\n")  # read after the split is found, it would stop the load
    with pytest.raises(EmbedbenchError, match=r"qrels/dev\.tsv: file not found; the splits judged here are "
                                              r"test, train$"):
        load_beir("tiny", tiny, "dev")
    for split in ("test", "train"):
        (tiny / "qrels" / f"{split}.tsv{'.gz' if split == 'train' else ''}").unlink()
    with pytest.raises(EmbedbenchError, match=r"qrels/dev\.tsv: file not found \(is the split name right\?\)$"):
        load_beir("tiny", tiny, "dev")


def test_a_repeated_document_or_query_id_keeps_the_last_as_beir_does(tiny, caplog):
    with open(tiny / "corpus.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "d1", "title": "", "text": "one again"}) + "\n")
    ds = load_beir("tiny", tiny, "test")
    assert ds.doc_text("d1") == "one again" and len(ds.corpus) == 2
    assert re.search(r"corpus\.jsonl:3: document id 'd1' was met before", caplog.text)
    with open(tiny / "queries.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "q1", "text": "asked again"}) + "\n")
    assert load_beir("tiny", tiny, "test").queries["q1"] == "asked again"
    assert re.search(r"queries\.jsonl:2: query id 'q1' was met before", caplog.text)


def test_a_judged_document_missing_from_the_corpus_is_kept_and_reported(tiny, caplog):
    with open(tiny / "qrels" / "test.tsv", "a") as fh:
        fh.write("q1\tnope\t1\n")
    ds = load_beir("tiny", tiny, "test")
    assert ds.qrels == {"q1": {"d1": 1, "nope": 1}}  # it counts against every ranking, as in mteb
    assert "nope" not in ds.corpus and subsample(ds, 1, 1).corpus.keys() == {"d1"}
    assert re.search(r"test\.tsv:3: document 'nope' is not in the corpus; 1 such judgement", caplog.text)


def test_judgements_of_a_query_missing_from_the_queries_are_left_out_and_reported(tiny, caplog):
    with open(tiny / "qrels" / "test.tsv", "a") as fh:
        fh.write("q9\td1\t1\nq9\td2\t1\n")
    ds = load_beir("tiny", tiny, "test")
    assert ds.qrels == {"q1": {"d1": 1}} and list(ds.queries) == ["q1"]
    assert re.search(r"test\.tsv:3: query 'q9' is not in the queries; 2 judgement\(s\) of 1 such", caplog.text)


@pytest.mark.parametrize("line, message", [("q9\td1\t1", r"test\.tsv:2: query 'q9' is not in the queries, nor"),
                                           ("q1\tnope\t1", r"test\.tsv:2: document 'nope' is not in the corpus, nor")])
def test_a_split_judging_nothing_in_the_set_is_refused(tiny, line, message):
    (tiny / "qrels" / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\n{line}\n")
    with pytest.raises(EmbedbenchError, match=message):
        load_beir("tiny", tiny, "test")


def test_empty_corpus_and_missing_field(tmp_path):
    folder = beir_folder(tmp_path / "e", {}, {"q1": "x"}, {"q1": {"d1": 1}})
    with pytest.raises(EmbedbenchError, match="corpus is empty"):
        load_beir("e", folder, "test")
    (folder / "corpus.jsonl").write_text(json.dumps({"_id": "d1"}) + "\n")
    with pytest.raises(EmbedbenchError, match=r"corpus\.jsonl:1: missing field 'text'"):
        load_beir("e", folder, "test")


def test_qrels_bad_score(tmp_path):
    path = tmp_path / "q.tsv"
    for score in ("high", "inf", "nan"):
        path.write_text(f"query-id\tcorpus-id\tscore\nq1\td1\t{score}\n")
        with pytest.raises(EmbedbenchError, match=rf"q\.tsv:2: score '{score}' is not a finite number"):
            load_qrels(path)


def test_qrels_header_under_other_names_or_none(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("qid\tdocid\trelevance\nq1\td1\t1\n")
    assert load_qrels(path) == {"q1": {"d1": 1}}
    path.write_text("q1\td1\t1\nq1\td2\t0\n")  # no header: the first line is a judgement
    assert load_qrels(path) == {"q1": {"d1": 1, "d2": 0}}


def test_trec_qrels_read_as_the_beir_file_they_equal(tmp_path):
    beir = tmp_path / "beir.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\n1102432\t2026790\t1\n1102432\t7\t0\n19335\t1017759\t3\n")
    expected = load_qrels(beir)
    for name, text in (("msmarco.tsv", "1102432\t0\t2026790\t1\n1102432\t0\t7\t0\n19335\t0\t1017759\t3\n"),
                       ("trec_dl.txt", "1102432 Q0 2026790 1\n1102432 Q0 7 0\n19335 Q0 1017759 3\n")):
        (tmp_path / name).write_text(text)
        assert load_qrels(tmp_path / name) == expected == {"1102432": {"2026790": 1, "7": 0}, "19335": {"1017759": 3}}
    (tmp_path / "short.txt").write_text("1102432 2026790\n")  # spaces, but neither layout
    with pytest.raises(EmbedbenchError, match=r"short\.txt:1: expected query-id, corpus-id, score; got 2 field"):
        load_qrels(tmp_path / "short.txt")


def _msmarco_folder(folder, corpus: str, queries: str = "19335\tanthropological study of cats\n"):
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.tsv").write_text(corpus)
    (folder / "queries.tsv").write_text(queries)
    (folder / "qrels" / "dev.tsv").write_text("19335\t0\t7\t1\n")  # MS MARCO's qrels.dev.tsv
    return folder


def test_ms_marco_tsv_corpus_and_queries_read_as_the_beir_folder_they_equal(tmp_path):
    expected = load_beir("x", beir_folder(tmp_path / "beir", {
        "7": {"title": "", "text": 'The "cat" studies.'}, "8": {"title": "", "text": "Dogs."}},
        {"19335": "anthropological study of cats"}, {"19335": {"7": 1}}, split="dev"), "dev")
    headerless = _msmarco_folder(tmp_path / "collection", '7\tThe "cat" studies.\n8\tDogs.\n')
    named = _msmarco_folder(tmp_path / "named", 'pid\tpassage\n7\tThe "cat" studies.\n8\tDogs.\n',
                            "qid\tquery\n19335\tanthropological study of cats\n")
    for folder in (headerless, named):
        ds = load_beir("x", folder, "dev")
        assert (ds.corpus, ds.queries, ds.qrels) == (expected.corpus, expected.queries, expected.qrels)
    titled = load_beir("x", _msmarco_folder(tmp_path / "titled", 'id\ttext\ttitle\n8\tDogs.\t"D"\n'
                                            '7\t"The ""cat"" studies."\t\n9\t"Hi," he said "bye"\tH\n'), "dev")
    assert titled.corpus == {  # DPR's columns and quoting; a field with bare quotes inside stays as it is
        "7": {"title": "", "text": 'The "cat" studies.'}, "8": {"title": "D", "text": "Dogs."},
        "9": {"title": "H", "text": '"Hi," he said "bye"'}}
    (named / "corpus.jsonl").write_text(json.dumps({"_id": "7", "text": "from the jsonl"}) + "\n")
    assert load_beir("x", named, "dev").doc_text("7") == "from the jsonl"  # BEIR's own file comes first


def test_jsonl_files_under_pyserinis_and_tevatrons_names_read_as_the_beir_folder_they_equal(tmp_path):
    expected = load_beir("x", beir_folder(tmp_path / "beir", {
        "7": {"title": "Cats", "text": "The cat studies."}, "8": {"title": "", "text": "Dogs."}},
        {"q1": "what do cats study"}, {"q1": {"7": 1}}), "test")
    pyserini = ([{"id": "7", "contents": "The cat studies.", "title": "Cats"}, {"id": 8, "contents": "Dogs."}],
                [{"id": "q1", "contents": "what do cats study"}])
    tevatron = ([{"docid": "7", "title": "Cats", "text": "The cat studies."}, {"docid": "8", "text": "Dogs."}],
                [{"query_id": "q1", "query": "what do cats study"}])
    for corpus, queries in (pyserini, tevatron):
        folder = tmp_path / f"{next(iter(corpus[0]))}"
        shutil.copytree(tmp_path / "beir" / "qrels", folder / "qrels")
        for name, records in (("corpus", corpus), ("queries", queries)):
            (folder / f"{name}.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
        ds = load_beir("x", folder, "test")
        assert (ds.corpus, ds.queries, ds.qrels) == (expected.corpus, expected.queries, expected.qrels)
    (folder / "queries.jsonl").write_text(json.dumps({"query_id": "q1", "query": None}) + "\n")
    with pytest.raises(EmbedbenchError, match=r"queries\.jsonl:1: field 'query' is null, not a string"):
        load_beir("x", folder, "test")  # the file's own name for the field
    (folder / "queries.jsonl").write_text(json.dumps({"query_id": "q1", "query": "a"}) + "\n" +
                                          json.dumps({"query_id": "q2"}) + "\n")
    with pytest.raises(EmbedbenchError, match=r"queries\.jsonl:2: missing field 'query'"):
        load_beir("x", folder, "test")


def _packed(path, suffix):
    """``path`` replaced by its ``<name><suffix>``, compressed as the suffix says."""
    packed = path.with_name(f"{path.name}{suffix}")
    packed.write_bytes({".gz": gzip, ".bz2": bz2, ".xz": lzma}[suffix].compress(path.read_bytes()))
    path.unlink()
    return packed


@pytest.mark.parametrize("suffix,name", [(".gz", "gzip"), (".bz2", "bzip2"), (".xz", "xz")])
def test_compressed_files_read_as_the_plain_folder_they_equal(tmp_path, suffix, name):
    plain = load_beir("x", _msmarco_folder(tmp_path / "plain", 'id\ttitle\ttext\n7\tCats\tThe "cat" studies.\n'
                                           '8\t\tDogs.\n'), "dev")
    tsv = _msmarco_folder(tmp_path / "tsv", 'id\ttitle\ttext\n7\tCats\tThe "cat" studies.\n8\t\tDogs.\n')
    jsonl = beir_folder(tmp_path / "jsonl", plain.corpus, plain.queries, plain.qrels, split="dev")
    for path in (tsv / "corpus.tsv", tsv / "queries.tsv", tsv / "qrels" / "dev.tsv", jsonl / "corpus.jsonl",
                 jsonl / "queries.jsonl"):
        _packed(path, suffix)
    for folder in (tsv, jsonl):
        ds = load_beir("x", folder, "dev")
        assert (ds.corpus, ds.queries, ds.qrels) == (plain.corpus, plain.queries, plain.qrels)
    packed = jsonl / f"corpus.jsonl{suffix}"
    packed.write_bytes(packed.read_bytes()[:-12])  # a download cut short
    with pytest.raises(EmbedbenchError, match=rf"^\S+corpus\.jsonl\{suffix}: not a whole {name} file \("):
        load_beir("x", jsonl, "dev")
    packed.write_bytes(b"not compressed at all\n" * 10)
    with pytest.raises(EmbedbenchError, match=rf"^\S+corpus\.jsonl\{suffix}: not a whole {name} file \("):
        load_beir("x", jsonl, "dev")


@pytest.mark.parametrize("name", ["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
def test_a_file_that_is_not_utf8_is_named_with_its_line(tiny, name):
    path = tiny / name
    lines = path.read_text().splitlines(keepends=True)
    filler = (lines[-1] * 1000).encode()  # past the decoder's first block, which it reads ahead of the lines
    path.write_bytes("".join(lines).encode() + filler + "café\n".encode("latin-1") + filler)  # a Windows-1252 export
    line = len(lines) + 1001
    message = rf"^\S+{re.escape(name)}:{line}: not UTF-8 text \(byte 0xe9\); save it as UTF-8$"
    with pytest.raises(EmbedbenchError, match=message):
        load_beir("tiny", tiny, "test")


@pytest.mark.parametrize("corpus, message", [
    ("7\tT\tThe cat.\n", r"corpus\.tsv:1: 3 columns and no first line naming them, e\.g\. id, text, title"),
    ("id\ttext\n7\tThe cat.\n8\n", r"corpus\.tsv:3: 1 field\(s\); column 'text' needs at least 2"),
])
def test_a_tsv_corpus_whose_columns_cannot_be_told_apart_is_named(tmp_path, corpus, message):
    with pytest.raises(EmbedbenchError, match=message):
        load_beir("x", _msmarco_folder(tmp_path / "bad", corpus), "dev")


@needs_data
def test_subsample_keeps_every_judged_doc():
    ds = load_beir("scifact", SCIFACT, "test")
    small = subsample(ds, 10, 50, seed=3)
    assert len(small.queries) == 10 and len(small.corpus) == 50
    assert all(d in small.corpus for docs in small.qrels.values() for d in docs)
    assert subsample(ds, 10, 50, seed=3).qrels == small.qrels  # seeded


def test_offline_without_data_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("EMBEDBENCH_DATA", raising=False)
    monkeypatch.setenv("EMBEDBENCH_CACHE", str(tmp_path))
    with pytest.raises(EmbedbenchError, match="set data.root=<folder> or EMBEDBENCH_DATA"):
        resolve_root("nosuchset", None, "http://127.0.0.1:9/nosuchset.zip")
    assert not any(tmp_path.rglob("*.part"))  # nothing half-written left behind


def test_data_root_that_does_not_exist():
    with pytest.raises(EmbedbenchError, match="data.root=/no/such: no such folder"):
        resolve_root("scifact", "/no/such")
