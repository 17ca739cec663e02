"""BEIR-format folders: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.

Where a folder comes from: ``data.root`` if set, else ``$EMBEDBENCH_DATA/beir/<name>``,
else the official BEIR zip downloaded into a cache.
"""
from __future__ import annotations

import csv
import json
import os
import random
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from embedbench.data.files import jsonl_records
from embedbench.errors import EmbedbenchError, at

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"


@dataclass
class BeirDataset:
    name: str
    corpus: dict[str, dict[str, str]]  # doc id -> {"title", "text"}
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: grade}

    def doc_text(self, doc_id: str) -> str:
        """Title and body joined as mteb and BEIR do for dense models."""
        doc = self.corpus[doc_id]
        title = doc.get("title") or ""
        return f"{title} {doc['text']}".strip() if title else doc["text"].strip()


def cache_dir() -> Path:
    return Path(os.environ.get("EMBEDBENCH_CACHE", Path.home() / ".cache" / "embedbench"))


def resolve_root(name: str, root: str | None, url: str | None = None, key: str = "data.root") -> Path:
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
    if (cached / "corpus.jsonl").is_file():
        return cached
    looked.append(str(cached))
    return download(name, url or BEIR_URL.format(name=name), cached, looked)


def download(name: str, url: str, target: Path, looked: list[str]) -> Path:
    """Fetch and unpack a BEIR zip; the folder appears only once complete. ``looked``: the places searched
    before, named in the error if the download fails too."""
    target.parent.mkdir(parents=True, exist_ok=True)
    archive = target.parent / f".{name}.zip.part"
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(archive, "wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        archive.unlink(missing_ok=True)
        raise EmbedbenchError(
            f"data {name}: not in {', '.join(looked)}, and the download from {url} failed ({exc}); "
            f"set data.root=<folder> or EMBEDBENCH_DATA=<folder holding beir/{name}>") from exc
    staging = target.parent / f".{name}.unpack"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(staging)
    archive.unlink()
    inner = next((p.parent for p in staging.rglob("corpus.jsonl")), None)
    if inner is None:
        raise EmbedbenchError(f"{url}: archive holds no corpus.jsonl")
    inner.rename(target)
    return target


def load_corpus(path: Path) -> dict[str, dict[str, str]]:
    corpus = {}
    for lineno, rec in jsonl_records(path, ("_id", "text")):
        doc_id = str(rec["_id"])
        if doc_id in corpus:
            raise at(path, lineno, f"duplicate document id {doc_id!r}")
        corpus[doc_id] = {"title": rec.get("title") or "", "text": rec["text"] or ""}
    if not corpus:
        raise at(path, None, "corpus is empty")
    return corpus


def load_queries(path: Path) -> dict[str, str]:
    return {str(rec["_id"]): rec["text"] for _, rec in jsonl_records(path, ("_id", "text"))}


def load_qrels(path: Path, queries=None, corpus=None) -> dict[str, dict[str, int]]:
    """query-id, corpus-id, score; tab-separated with a header line, CRLF tolerated.

    Given ``queries``/``corpus``, every judgement must name a known query and document.
    """
    if not path.is_file():
        raise at(path, None, "file not found (is the split name right?)")
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not row or (lineno == 1 and row[0].strip() == "query-id"):
                continue
            if len(row) < 3:
                raise at(path, lineno, f"expected query-id, corpus-id, score; got {len(row)} field(s)")
            try:
                grade = int(float(row[2]))
            except ValueError:
                raise at(path, lineno, f"score {row[2]!r} is not a number") from None
            qid, doc_id = row[0].strip(), row[1].strip()
            if queries is not None and qid not in queries:
                raise at(path, lineno, f"query {qid!r} is not in queries.jsonl")
            if corpus is not None and doc_id not in corpus:
                raise at(path, lineno, f"document {doc_id!r} is not in corpus.jsonl")
            qrels.setdefault(qid, {})[doc_id] = grade
    if not qrels:
        raise at(path, None, "no judgements in this split")
    return qrels


def load_candidates(path: Path, ds: BeirDataset) -> dict[str, list[str]]:
    """Each judged query's documents to rerank, in file order: ``query-id, corpus-id[, score]`` per
    line (a header line and a run's score column are allowed), tab-separated."""
    if not path.is_file():
        raise at(path, None, "file not found")
    candidates: dict[str, list[str]] = {}
    with open(path, encoding="utf-8", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not row or (lineno == 1 and row[0].strip() == "query-id"):
                continue
            if len(row) < 2:
                raise at(path, lineno, "expected query-id, corpus-id")
            qid, doc_id = row[0].strip(), row[1].strip()
            if doc_id not in ds.corpus:
                raise at(path, lineno, f"document {doc_id!r} is not in corpus.jsonl")
            if qid in ds.qrels:
                candidates.setdefault(qid, []).append(doc_id)
    missing = [qid for qid in ds.qrels if qid not in candidates]
    if missing:
        raise at(path, None, f"{len(missing)} judged queries have no candidates, e.g. {missing[0]!r}")
    return candidates


def load_beir(name: str, root: Path, split: str) -> BeirDataset:
    corpus = load_corpus(root / "corpus.jsonl")
    queries = load_queries(root / "queries.jsonl")
    qrels = load_qrels(root / "qrels" / f"{split}.tsv", queries, corpus)
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
    keep = list(dict.fromkeys(d for qid in qids for d in qrels[qid]))
    if max_docs and max_docs > len(keep):
        judged = set(keep)
        keep += [d for d in ds.corpus if d not in judged][: max_docs - len(keep)]
    elif not max_docs:
        keep = list(ds.corpus)
    corpus = {d: ds.corpus[d] for d in keep}
    return BeirDataset(ds.name, corpus, {q: ds.queries[q] for q in qids}, qrels)
