"""Retrieval collections from the Hugging Face Hub in the layout mteb's dataset repositories and NanoBEIR
use: a ``corpus`` config (_id, title, text), a ``queries`` config (_id, text) and the judgements (query-id,
corpus-id[, score]) in a ``qrels`` or ``default`` config, one split per evaluation split. A folder written
by ``DatasetDict.save_to_disk`` per config (``<folder>/corpus``, ...) is read the same way, offline."""
from __future__ import annotations

from pathlib import Path

from embedbench.data.beir import BeirDataset
from embedbench.errors import EmbedbenchError

QRELS_CONFIGS = ("qrels", "default")


def load_hub(name: str, source: str, revision: str | None, split: str, key: str) -> BeirDataset:
    tables = _Tables(source, revision, key)
    corpus = {str(row["_id"]): {"title": row.get("title") or "", "text": row["text"] or ""}
              for row in tables.only_split("corpus")}
    queries = {str(row["_id"]): row["text"] for row in tables.only_split("queries")}
    qrels: dict[str, dict[str, int]] = {}
    for row in tables.split(tables.qrels_config(), split):
        qid, doc_id = str(row["query-id"]), str(row["corpus-id"])
        if qid not in queries or doc_id not in corpus:
            missing = f"query {qid!r}" if qid not in queries else f"document {doc_id!r}"
            raise EmbedbenchError(f"{key}={source}: the {split} judgements name {missing}, which is not in the set")
        qrels.setdefault(qid, {})[doc_id] = int(row.get("score", 1))
    if not qrels:
        raise EmbedbenchError(f"{key}={source}: no judgements in split {split!r}")
    return BeirDataset(name, corpus, {qid: queries[qid] for qid in qrels}, qrels)


class _Tables:
    """The configs of one dataset, from a local folder or the Hub."""

    def __init__(self, source: str, revision: str | None, key: str):
        self.source, self.revision, self.key = source, revision, key
        self.local = Path(source).expanduser().is_dir()

    def configs(self) -> list[str]:
        if self.local:
            return sorted(p.name for p in Path(self.source).expanduser().iterdir() if p.is_dir())
        from datasets import get_dataset_config_names

        return get_dataset_config_names(self.source, revision=self.revision)

    def load(self, config: str):
        from datasets import load_dataset, load_from_disk

        try:
            if self.local:
                return load_from_disk(str(Path(self.source).expanduser() / config))
            return load_dataset(self.source, config, revision=self.revision)
        except (FileNotFoundError, ValueError, ConnectionError) as exc:
            raise EmbedbenchError(f"{self.key}={self.source}: cannot load config {config!r} ({exc})") from None

    def only_split(self, config: str):
        table = self.load(config)
        return next(iter(table.values())) if hasattr(table, "values") else table

    def split(self, config: str, split: str):
        table = self.load(config)
        if not hasattr(table, "keys"):
            return table
        if split not in table:
            raise EmbedbenchError(f"{self.key}={self.source}: config {config!r} has no split {split!r} "
                                  f"(splits: {', '.join(table)})")
        return table[split]

    def qrels_config(self) -> str:
        found = [c for c in QRELS_CONFIGS if c in self.configs()]
        if not found:
            raise EmbedbenchError(f"{self.key}={self.source}: no judgements config ({' or '.join(QRELS_CONFIGS)})")
        return found[0]
