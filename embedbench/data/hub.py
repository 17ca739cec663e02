"""Retrieval collections from the Hugging Face Hub in the layout mteb's dataset repositories and NanoBEIR
use: a ``corpus`` config (_id, title, text), a ``queries`` config (_id, text) and the judgements (query-id,
corpus-id[, score]) in a ``qrels`` or ``default`` config, one split per evaluation split; or, as LongEmbed
publishes its tasks, one config per task (``hub_config``) whose splits are corpus (doc_id, text), queries
(qid, text) and qrels (qid, doc_id). A folder written by ``DatasetDict.save_to_disk`` per config
(``<folder>/corpus``, ...) is read the same way, offline."""
from __future__ import annotations

from embedbench.data.beir import BeirDataset, judgements, text_field
from embedbench.data.hub_tables import HubDataset
from embedbench.errors import EmbedbenchError

QRELS_CONFIGS = ("qrels", "default")


def load_hub(name: str, source: str, revision: str | None, split: str, key: str,
             config: str | None = None) -> BeirDataset:
    tables = HubDataset(source, revision, key)
    if config:
        corpus_rows, query_rows, judged = (tables.split(config, part) for part in ("corpus", "queries", "qrels"))
    else:
        corpus_rows, query_rows = tables.only_split("corpus"), tables.only_split("queries")
        judged = tables.split(_qrels_config(tables), split)
    corpus = {str(_field(row, "_id", "doc_id")): {"title": row.get("title") or "", "text": row["text"] or ""}
              for row in corpus_rows}
    # a Hub table's text column holds strings or nulls; a null query has nothing to ask
    queries = {str(_field(row, "_id", "qid")): text_field(f"{key}={source} queries", i, row, "text", empty=False)
               for i, row in enumerate(query_rows, 1)}
    where = f"{key}={source}, {split} judgements"
    qrels = judgements(((f"{where}, row {i + 1}", str(_field(row, "query-id", "qid")),
                         str(_field(row, "corpus-id", "doc_id")), int(row.get("score", 1)))
                        for i, row in enumerate(judged)), queries, corpus, where)
    return BeirDataset(name, corpus, {qid: queries[qid] for qid in qrels}, qrels)


def _field(row: dict, *names: str):
    """The first of ``names`` the row has: BEIR's column names, then LongEmbed's."""
    for name in names:
        if name in row:
            return row[name]
    raise EmbedbenchError(f"a hub dataset's row has neither {' nor '.join(names)} (columns: {', '.join(row)})")


def _qrels_config(tables: HubDataset) -> str:
    found = [c for c in QRELS_CONFIGS if c in tables.configs()]
    if not found:
        raise EmbedbenchError(f"{tables.key}={tables.source}: no judgements config ({' or '.join(QRELS_CONFIGS)})")
    return found[0]
