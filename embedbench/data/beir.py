"""BEIR-format folders: corpus.jsonl, queries.jsonl, qrels/<split>.tsv; or the corpus and queries as tab-separated
corpus.tsv and queries.tsv, as MS MARCO ships its collection and queries; any of them may be compressed with
gzip, bzip2 or xz (``corpus.jsonl.gz``), as large collections are often shared.

Where a folder comes from: ``data.root`` if set, else ``$EMBEDBENCH_DATA/beir/<name>``, else the cache, where
the archive at ``data.url`` (the official BEIR zip) is downloaded, checked against its md5 and unpacked.
"""
from __future__ import annotations

import csv
import json
import logging
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from embedbench.atomic import atomic_write
from embedbench.data.download import cache_dir, fetch, unpack
from embedbench.data.files import COMPRESSIONS, data_suffix, jsonl_records, named_records, text_file, uncompressed_name
from embedbench.data.tables import Layout, table_rows
from embedbench.errors import EmbedbenchError, at

log = logging.getLogger("embedbench")
BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"


@dataclass
class BeirDataset:
    name: str
    corpus: dict[str, dict[str, str]]  # doc id -> {"title", "text"}
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: grade}

    def doc_text(self, doc_id: str) -> str:
        doc = self.corpus[doc_id]
        return title_and_text(doc.get("title") or "", doc["text"])


def title_and_text(title: str, text: str) -> str:
    """A document's title and body joined as mteb and BEIR do for dense models."""
    return f"{title} {text}".strip() if title else text.strip()


def resolve_root(name: str, root: str | None, url: str | None = None, md5: str | None = None,
                 key: str = "data.root") -> Path:
    if root:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise EmbedbenchError(f"{key}={root}: no such folder")
        return path
    shared = os.environ.get("EMBEDBENCH_DATA")
    looked = []
    if shared:
        path = Path(shared).expanduser() / "beir" / name
        if path.is_dir():
            return path
        looked.append(str(path))
    else:
        looked.append("$EMBEDBENCH_DATA/beir (not set)")
    cached = cache_dir() / "beir" / name
    if cached.is_dir():  # published whole, by one rename
        return cached
    looked.append(str(cached))
    url = url or BEIR_URL.format(name=name)
    try:
        archive = fetch(url, cached.with_name(f"{name}.zip"), "md5", md5)
    except EmbedbenchError as exc:
        raise EmbedbenchError(f"data {name}: not in {', '.join(looked)}, and {exc}; set data.root=<folder> or "
                              f"EMBEDBENCH_DATA=<folder holding beir/{name}>") from None
    unpack(archive, cached)
    archive.unlink()
    return cached


ID_NAMES = ("id", "_id", "docid", "doc_id", "pid", "qid", "query_id", "query-id", "corpus-id")
TEXT_NAMES = ("text", "passage", "contents", "body", "query", "question")
# what a corpus or queries file may call each field: a tab-separated file's first line, or a jsonl file's
# keys (BEIR's _id, Pyserini's id and contents, Tevatron's docid); a tab-separated file with no such line
# is told by its column count (id and text: MS MARCO's collection.tsv and queries.*.tsv; three, title
# included, come in either order, so need the names)
FIELD_NAMES = {"_id": ID_NAMES, "text": TEXT_NAMES, "title": ("title",)}
TSV_LAYOUTS = {2: ("_id", "text")}


def tsv_records(path: Path) -> Iterable[tuple[int, dict[str, str]]]:
    """(line number, {"_id", "text"[, "title"]}) for every line of a tab-separated corpus or queries file (MS
    MARCO's, DPR's), its columns named by a first line or told by their count (:data:`TSV_LAYOUTS`), each
    field unquoted where it is in CSV quoting."""
    if not path.is_file():
        raise at(path, None, "file not found")
    with text_file(path) as fh:
        lineno, first = next(((n, line) for n, line in enumerate(fh, 1) if line.strip()), (1, ""))
    row = first.rstrip("\r\n").split("\t")
    header = [name.strip().lower() for name in row]
    named = {field: next((row[header.index(name)] for name in names if name in header), None)
             for field, names in FIELD_NAMES.items()}
    if named["_id"] is not None and named["text"] is not None:
        columns, has_header = {field: name for field, name in named.items() if name is not None}, True
    elif len(row) in TSV_LAYOUTS:
        columns, has_header = {field: i for i, field in enumerate(TSV_LAYOUTS[len(row)])}, False
    else:
        raise at(path, lineno, f"{len(row)} columns and no first line naming them, e.g. "
                 f"{', '.join(names[0] for names in FIELD_NAMES.values())} (tab-separated, in any order)")
    for lineno, record in table_rows(path, columns, Layout("tsv", has_header)):
        yield lineno, {field: _unquoted(value) for field, value in record.items()}


def _unquoted(field: str) -> str:
    """A field in CSV quoting (wrapped in quotes, every quote inside doubled, as DPR's passages are) as its
    text; any other field as it is (MS MARCO's passages hold bare quotes, which a CSV reader would take as
    the start of a field running across tabs and lines)."""
    if len(field) >= 2 and field[0] == field[-1] == '"' and '"' not in field[1:-1].replace('""', ""):
        return field[1:-1].replace('""', '"')
    return field


def collection_file(root: Path, stem: str) -> Path:
    """``root``'s ``<stem>.jsonl``, else its ``<stem>.tsv``, each plain or compressed."""
    return _first_there([root / f"{stem}{ext}{packed}" for ext in (".jsonl", ".tsv")
                         for packed in ("", *COMPRESSIONS)])


def qrels_file(root: Path, split: str) -> Path:
    """``root``'s ``qrels/<split>.tsv``, plain or compressed; where there is none, one line naming the splits
    the folder does judge."""
    path = _first_there([root / "qrels" / f"{split}.tsv{packed}" for packed in ("", *COMPRESSIONS)])
    if not path.is_file():
        judged = sorted({Path(uncompressed_name(file)).stem for file in path.parent.glob("*.tsv*")
                         if data_suffix(file) == ".tsv"})
        raise at(path, None, f"file not found; the splits judged here are {', '.join(judged)}" if judged else
                 "file not found (is the split name right?)")
    return path


def _first_there(paths: list[Path]) -> Path:
    """The first of ``paths`` that is a file; the first where none is, so the error names the file BEIR's
    layout expects."""
    return next((path for path in paths if path.is_file()), paths[0])


def load_corpus(path: Path) -> dict[str, dict[str, str]]:
    def document(lineno: int, rec: dict, names: dict[str, str]) -> dict[str, str]:
        return {field: text_field(path, lineno, rec, names[field]) for field in ("title", "text")}

    corpus = records_by_id(path, "document", document)
    if not corpus:
        raise at(path, None, "corpus is empty")
    return corpus


def load_queries(path: Path) -> dict[str, str]:
    return records_by_id(path, "query", lambda lineno, rec, names: text_field(path, lineno, rec, names["text"],
                                                                              empty=False))


def records_by_id(path: Path, what: str, read) -> dict:
    """{id: read(line number, record, the record's name of each field)} over a jsonl or tsv file; an id met
    again replaces the earlier record, as BEIR's reader takes it, with a warning."""
    found, repeated = {}, []
    if data_suffix(path) == ".tsv":
        names, records = {field: field for field in FIELD_NAMES}, tsv_records(path)
    else:
        names = jsonl_names(path)
        records = jsonl_records(path, (names["_id"], names["text"]))
    for lineno, rec in records:
        key = str(rec[names["_id"]])
        if key in found:
            repeated.append((lineno, key))
        found[key] = read(lineno, rec, names)
    if repeated:
        lineno, key = repeated[0]
        log.warning("%s:%d: %s id %r was met before (%d lines repeat an id); the last %s of each id is kept, as "
                    "BEIR's reader keeps it", path, lineno, what, key, len(repeated), what)
    return found


def jsonl_names(path: Path) -> dict[str, str]:
    """Each field's name in a jsonl corpus or queries file, as its first record has it: BEIR's where it has
    them (or has none of :data:`FIELD_NAMES`' others, so a missing field is named as BEIR names it)."""
    first = next((record for _, record in jsonl_records(path, ())), {})
    return {field: next((name for name in (field, *names) if name in first), field)
            for field, names in FIELD_NAMES.items()}


def text_field(path: Path | str, lineno: int, record: dict, key: str, empty: bool = True) -> str:
    """A record's text field; a missing or null one is empty where ``empty`` (a document's title and text: an
    untitled corpus may write null), and anything but a string stops with the file and line."""
    value = record.get(key)
    if value is None and empty:
        return ""
    if not isinstance(value, str):
        raise at(path, lineno, f"field {key!r} is {json.dumps(value)}, not a string")
    return value


TREC_ITERATIONS = ("0", "q0")  # the second field of TREC's qrels and run lines, which IR tools ignore


def _trec_fields(row: list[str], width: int) -> list[str]:
    """A line split at tabs, or at any whitespace where it holds none (TREC's files use spaces); a line of
    ``width`` fields whose second is TREC's iteration field (``0``, ``Q0``) loses that field."""
    if len(row) == 1:
        row = row[0].split()
    if len(row) == width and row[1].strip().lower() in TREC_ITERATIONS:
        return [row[0], *row[2:]]
    return row


def _id_rows(path: Path, width: int) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a qrels or candidates file: tab-separated, or a TREC file of ``width`` fields
    (:func:`_trec_fields`); blank lines and BEIR's header line left out."""
    if not path.is_file():
        raise at(path, None, "file not found")
    with text_file(path, newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if row and not (lineno == 1 and row[0].strip() == "query-id"):
                yield lineno, _trec_fields(row, width)


def load_qrels(path: Path, queries=None, corpus=None) -> dict[str, dict[str, int]]:
    """query-id, corpus-id, score; tab-separated, a header line under any names, CRLF tolerated; or TREC's
    qrels (query-id, iteration, corpus-id, grade; tabs or spaces, as MS MARCO's and TREC DL's ship). Given
    ``queries`` and ``corpus``, judgements that name something outside them go as :func:`judgements` says."""
    rows = []
    for lineno, row in _id_rows(path, 4):
        if len(row) < 3:
            raise at(path, lineno, f"expected query-id, corpus-id, score; got {len(row)} field(s)")
        try:
            grade = int(float(row[2]))
        except (ValueError, OverflowError):  # not a number, or inf
            if lineno == 1:  # a header under other names (qid, docid, rel): BEIR's reader skips any first line
                continue
            raise at(path, lineno, f"score {row[2]!r} is not a finite number") from None
        rows.append((f"{path}:{lineno}", row[0].strip(), row[1].strip(), grade))
    return judgements(rows, queries, corpus, str(path))


def judgements(rows: Iterable[tuple[str, str, str, int]], queries=None, corpus=None,
               where: str = "qrels") -> dict[str, dict[str, int]]:
    """{query id: {doc id: grade}} from (where, query id, doc id, grade) rows, checked against ``queries`` and
    ``corpus`` as mteb scores such sets. A query that is not in the set cannot be asked: its judgements are
    dropped (mteb and pytrec_eval score the queries asked). A document that is not in the corpus is kept:
    a relevant document no ranking can reach counts against every ranking, as it does in mteb (BEIR's
    ArguAna judges five such documents). Each is reported with a count and its first place; a split none of
    whose queries, or none of whose documents, is in the set is an error (the files do not belong together).
    """
    qrels: dict[str, dict[str, int]] = {}
    unasked, unreachable, judged = [], [], 0
    for place, qid, doc_id, grade in rows:
        judged += 1
        if queries is not None and qid not in queries:
            unasked.append((place, qid))
            continue
        if corpus is not None and doc_id not in corpus:
            unreachable.append((place, doc_id))
        qrels.setdefault(qid, {})[doc_id] = grade
    if not judged:
        raise EmbedbenchError(f"{where}: no judgements in this split")
    if not qrels:
        place, qid = unasked[0]
        raise EmbedbenchError(f"{place}: query {qid!r} is not in the queries, nor is any other query this split "
                              "judges")
    if unreachable and len(unreachable) == judged - len(unasked):
        place, doc_id = unreachable[0]
        raise EmbedbenchError(f"{place}: document {doc_id!r} is not in the corpus, nor is any other document this "
                              "split judges")
    if unasked:
        place, qid = unasked[0]
        log.warning("%s: query %r is not in the queries; %d judgement(s) of %d such queries are left out, as mteb "
                    "leaves them", place, qid, len(unasked), len({q for _, q in unasked}))
    if unreachable:
        place, doc_id = unreachable[0]
        log.warning("%s: document %r is not in the corpus; %d such judgement(s) are kept, counting as relevant "
                    "documents no ranking can reach, as mteb counts them", place, doc_id, len(unreachable))
    return qrels


def write_trec_run(path: Path, run: dict[str, dict[str, float]], tag: str) -> None:
    """``run`` ({query id: {doc id: score}}) as a TREC run file: each query's documents in trec_eval's order
    (falling score, ties by falling doc id), scores written exactly, so trec_eval reads the ranking scored."""
    with atomic_write(path) as fh:
        for qid, scores in run.items():
            ranked = sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)
            fh.writelines(f"{qid} Q0 {doc_id} {rank} {score!r} {tag}\n" for rank, (doc_id, score) in
                          enumerate(ranked, 1))


def load_candidates(path: Path, ds: BeirDataset) -> dict[str, list[str]]:
    """Each judged query's documents to rerank, in file order: ``query-id, corpus-id[, score]`` per
    line (a header line and a run's score column are allowed), tab-separated; or a TREC run (query-id, Q0,
    corpus-id, rank, score, tag; tabs or spaces), as BM25 runs are shared."""
    candidates: dict[str, list[str]] = {}
    for lineno, row in _id_rows(path, 6):
        if len(row) < 2:
            raise at(path, lineno, "expected query-id, corpus-id")
        qid, doc_id = row[0].strip(), row[1].strip()
        if doc_id not in ds.corpus:
            raise at(path, lineno, f"document {doc_id!r} is not in the corpus")
        if qid in ds.qrels:
            candidates.setdefault(qid, []).append(doc_id)
    missing = [qid for qid in ds.qrels if qid not in candidates]
    if missing:
        raise at(path, None, f"{len(missing)} judged queries have no candidates, e.g. {missing[0]!r}")
    return candidates


# the keys of a query's positive and negative texts: FlagEmbedding's fine-tuning files; mteb's reranking samples
TEXT_GROUPS = (("pos", "neg"), ("positive", "negative"))


def group_texts(path: Path | str, lineno: int, record: dict) -> tuple[list[str], list[str]]:
    """(positives, negatives) of a query's record: FlagEmbedding's ``{"query", "pos": [text, ...], "neg":
    [...]}``, mteb's reranking sample ``{"query", "positive": [...], "negative": [...]}`` or Tevatron's
    ``{"query", "positive_passages": [{"title", "text"}, ...], "negative_passages": [...]}``, whose passage
    is its title and text joined as a BEIR document's."""
    for positive, negative in TEXT_GROUPS:
        if positive in record:
            groups = [record[positive], record.get(negative, [])]
            if not all(isinstance(texts, list) and all(isinstance(t, str) for t in texts) for texts in groups):
                raise at(path, lineno, f"{positive} and {negative} are lists of strings")
            return groups[0], groups[1]
    if "positive_passages" in record:
        groups = [record["positive_passages"], record.get("negative_passages", [])]
        if not all(isinstance(passages, list) and all(isinstance(p, dict) for p in passages) for passages in groups):
            raise at(path, lineno, "positive_passages and negative_passages are lists of {title, text} objects")
        positives, negatives = ([title_and_text(text_field(path, lineno, passage, "title"),
                                                text_field(path, lineno, passage, "text", empty=False))
                                 for passage in passages] for passages in groups)
        return positives, negatives
    raise at(path, lineno, "expected pos and neg (FlagEmbedding), positive and negative (mteb) or "
                           "positive_passages and negative_passages (Tevatron)")


def load_reranking_samples(name: str, path, split: str) -> tuple[BeirDataset, dict[str, list[str]]]:
    """Reranking samples (a query with its positives and negatives per record, in any layout
    :func:`group_texts` reads; mteb's reranking sets were first published as ``{"query", "positive",
    "negative"}``) as a collection and each query's candidates, under the ids mteb's conversion gives them
    (so ties order as in mteb); a sample with no positive or no negative is left out, as mteb leaves it out."""
    corpus, queries, qrels, candidates, skipped = {}, {}, {}, {}, 0
    for lineno, record in named_records(path, ("query",)):
        groups = group_texts(path, lineno, record)
        if not all(groups):
            skipped += 1
            continue
        qid = f"{split}_query{len(queries)}"
        queries[qid] = text_field(path, lineno, record, "query", empty=False)
        for prefix, grade, texts in (("apositive", 1, groups[0]), ("negative", 0, groups[1])):
            for i, text in enumerate(texts):
                doc_id = f"{prefix}_{qid}_{i:05d}"
                corpus[doc_id] = {"title": "", "text": text}
                qrels.setdefault(qid, {})[doc_id] = grade
        candidates[qid] = list(qrels[qid])
    if not queries:
        raise at(path, None, "no sample has both a positive and a negative")
    if skipped:
        log.warning("%s: %d sample(s) with no positive or no negative are left out, as mteb leaves them out", path,
                    skipped)
    return BeirDataset(name, corpus, queries, qrels), candidates


def load_collection(collection, split: str, key: str = "data", root: Path | None = None) -> BeirDataset:
    """``split`` of a :class:`embedbench.config.CollectionConfig`: its folder (``root`` if given, e.g. one of
    its subsets), or its Hugging Face dataset."""
    if collection.hub and root is None:
        from embedbench.data.hub import load_hub

        return load_hub(collection.name, collection.hub, collection.revision, split, f"{key}.hub",
                        collection.hub_config)
    root = root or resolve_root(collection.name, collection.root, collection.url, collection.md5, f"{key}.root")
    return load_beir(collection.name, root, split)


def load_beir(name: str, root: Path, split: str) -> BeirDataset:
    judged = qrels_file(root, split)  # before the corpus: a wrong split stops at once, not after 8M documents
    corpus = load_corpus(collection_file(root, "corpus"))
    queries = load_queries(collection_file(root, "queries"))
    qrels = load_qrels(judged, queries, corpus)
    queries = {qid: queries[qid] for qid in qrels}
    return BeirDataset(name, corpus, queries, qrels)


def write_beir(folder: Path, ds: BeirDataset, split: str = "test") -> Path:
    """``ds`` as a BEIR folder (corpus, queries, the split's qrels); other splits' qrels there are kept."""
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"_id": doc_id, **doc}) + "\n" for doc_id, doc in ds.corpus.items())
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"_id": qid, "text": text}) + "\n" for qid, text in ds.queries.items())
    with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        fh.writelines(f"{qid}\t{doc_id}\t{grade}\n" for qid, docs in ds.qrels.items()
                      for doc_id, grade in docs.items())
    return folder


def subsample(ds: BeirDataset, max_queries: int | None, max_docs: int | None, seed: int = 0) -> BeirDataset:
    """A smaller task that still judges: chosen queries keep all their relevant docs, the rest fill up."""
    if not max_queries and not max_docs:
        return ds
    qids = sorted(ds.qrels)
    if max_queries and len(qids) > max_queries:
        qids = sorted(random.Random(seed).sample(qids, max_queries))
    qrels = {qid: ds.qrels[qid] for qid in qids}
    keep = list(dict.fromkeys(d for qid in qids for d in qrels[qid] if d in ds.corpus))
    if max_docs and max_docs > len(keep):
        judged = set(keep)
        keep += [d for d in ds.corpus if d not in judged][: max_docs - len(keep)]
    elif not max_docs:
        keep = list(ds.corpus)
    corpus = {d: ds.corpus[d] for d in keep}
    return BeirDataset(ds.name, corpus, {q: ds.queries[q] for q in qids}, qrels)
