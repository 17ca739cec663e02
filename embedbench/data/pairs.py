"""Training examples as text columns, in the order the losses read them:
- (anchor, positive[, negative_1..k][, label]) from BEIR train qrels, with mined hard negatives and
  teacher scores when asked for (contrastive and distillation objectives);
- (anchor, positive[, negative_1..k]) from the columns of a pair or triplet table (``format: pairs``);
- (sentence1, sentence2, label) scored pairs for CoSENT / AnglE;
- (anchor, candidate_1..n, label) graded lists for list-wise losses;
- (anchor, positive) made from unlabeled text (``format: mirror`` / ``cropping``);
- (text) unlabeled text as it is (``format: text``) for masked-LM pre-training;
- (anchor, positive, negative) from a labelled table (``format: labelled``);
and several of them at once (``data.sources``), each a set of its own or, with the same columns, one mix.
"""
from __future__ import annotations

import math
import random
from collections import defaultdict
from pathlib import Path

from datasets import Dataset, concatenate_datasets

from embedbench.config import DataConfig, EncodeConfig
from embedbench.data.beir import BeirDataset, group_texts, load_collection, text_field
from embedbench.data.files import data_file, named_records
from embedbench.data.hub_tables import HubTable
from embedbench.data.tables import check_text, read_columns, read_labelled, read_scored_pairs, read_sts_benchmark
from embedbench.embedding.cache import EmbeddingCache
from embedbench.errors import EmbedbenchError, at


def training_sets(data_cfg: DataConfig, max_examples: int | None, seed: int, encode: EncodeConfig,
                  cache: EmbeddingCache | None, device: str = "auto") -> Dataset | dict[str, Dataset]:
    """``data=``'s training set; with ``data.sources``, each source's (``max_examples`` apiece): kept apart
    under ``data.sampler=same_source`` (every batch from one source), else mixed into one set, which needs
    the same columns in every source."""
    if not data_cfg.sources:
        return training_pairs(data_cfg, max_examples, seed, encode, cache, device)
    sets = {}
    for key, source in data_cfg.sources.items():
        try:
            sets[key] = training_pairs(source, max_examples, seed, encode, cache, device)
        except EmbedbenchError as exc:  # the readers name a source's settings as data.*: say which source
            raise EmbedbenchError(f"data.sources.{key}: {exc}") from None
    if data_cfg.sampler == "same_source":
        return sets
    for setting in ("instruction", "in_batch_negatives"):
        values = {getattr(source, setting) for source in data_cfg.sources.values()}
        if len(values) > 1:
            raise EmbedbenchError(f"data.sources differ in {setting}, which mixed batches cannot honour; set "
                                  "data.sampler=same_source")
    columns = {key: tuple(dataset.column_names) for key, dataset in sets.items()}
    if len(set(columns.values())) > 1:
        raise EmbedbenchError("data.sources: " + "; ".join(f"{key} has {', '.join(c)}" for key, c in columns.items())
                              + ": mixed batches need the same columns; set data.sampler=same_source")
    return concatenate_datasets(list(sets.values())).shuffle(seed=seed)


def training_pairs(data_cfg: DataConfig, max_examples: int | None, seed: int, encode: EncodeConfig,
                   cache: EmbeddingCache | None, device: str = "auto") -> Dataset:
    """The training set ``data=`` names, cut to ``max_examples``; ``encode``, ``cache`` and ``device`` serve
    the models that mine negatives and score them as teachers."""
    if data_cfg.format == "pairs":
        return text_pairs(data_cfg, max_examples)
    if data_cfg.format == "scored_pairs":
        return scored_pairs(data_cfg, max_examples)
    if data_cfg.format == "graded_lists":
        return graded_lists(data_cfg, max_examples)
    if data_cfg.format == "groups":
        return query_groups(data_cfg, max_examples, seed)
    if data_cfg.format == "labelled":
        return labelled_pairs(data_cfg, max_examples, seed)
    if data_cfg.format == "classes":
        return labelled_classes(data_cfg, max_examples)
    if data_cfg.format in ("mirror", "cropping"):
        from embedbench.data.unlabeled import self_supervised_pairs

        return self_supervised_pairs(data_cfg, max_examples, seed)
    if data_cfg.format == "text":
        from embedbench.data.unlabeled import text_table

        return text_table(data_cfg, max_examples)
    return qrels_training_set(data_cfg, max_examples, seed, encode, cache, device)


def text_pairs(data_cfg, max_examples: int | None) -> Dataset:
    """(anchor, positive[, negative_1..k]) from the rows of ``data.train``: its ``data.columns`` in that order,
    as sentence-transformers' pair and triplet sets come (NLI triplets, MS MARCO triples)."""
    columns = list(data_cfg.columns or [])
    if len(columns) < 2:
        raise EmbedbenchError(f"data.columns={columns}: format=pairs reads an anchor and a positive column, then "
                              "any negative columns (by header name or position)")
    roles = ["anchor", "positive", *(f"negative_{i}" for i in range(1, len(columns) - 1))]
    path = training_file(data_cfg)
    values, lines = read_columns(path, dict(zip(roles, columns)))
    for role, column in zip(roles, columns):
        check_text(path, column, values[role], lines)
    n = max_examples or len(lines)
    return Dataset.from_dict({role: values[role][:n] for role in roles})


def training_file(data_cfg) -> Path | HubTable:
    """``data.train``, or the ``data.train_split`` of the Hugging Face dataset ``data.hub`` (its config
    ``data.hub_config``), read as a table of named columns."""
    if data_cfg.train and data_cfg.hub:
        raise EmbedbenchError(f"data.train={data_cfg.train}, data.hub={data_cfg.hub}: give one source of examples")
    if data_cfg.hub:
        return HubTable(data_cfg.hub, data_cfg.hub_config, data_cfg.train_split, data_cfg.revision)
    if not data_cfg.train:
        raise EmbedbenchError(f"data.train: format={data_cfg.format} reads its examples from a file (or data.hub "
                              "from a Hugging Face dataset); give its path")
    return data_file(data_cfg.train, "data.train")


def scored_pairs(data_cfg, max_examples: int | None) -> Dataset:
    """STS-style pairs, gold scores scaled to 0..1 (CoSENT and AnglE only use their order): ``data.columns``
    (two texts and a score) of a table, or the STS Benchmark's layout."""
    path = training_file(data_cfg)
    low, high = data_cfg.min_score, data_cfg.max_score
    if not low < high:
        raise EmbedbenchError(f"data.min_score={low:g}, data.max_score={high:g}: the range of the gold scores "
                              "needs min_score below max_score")
    if data_cfg.columns is None:
        pairs = read_sts_benchmark(path, low, high)
    elif len(data_cfg.columns) == 3:
        pairs = read_scored_pairs(path, *data_cfg.columns, min_score=low, max_score=high)
    else:
        raise EmbedbenchError(f"data.columns={list(data_cfg.columns)}: format=scored_pairs reads two text columns "
                              "and a score column")
    n = max_examples or len(pairs.scores)
    return Dataset.from_dict({"sentence1": pairs.sentences1[:n], "sentence2": pairs.sentences2[:n],
                              "label": [(score - low) / (high - low) for score in pairs.scores[:n]]})


def labelled_pairs(data_cfg, max_examples: int | None, seed: int) -> Dataset:
    """Each text with another text of its label as the positive and a text of another label as the negative,
    as NV-Embed trains on classification and clustering data; labels with a single distinct text give none."""
    path = training_file(data_cfg)
    table = read_labelled(path, data_cfg.text_column, data_cfg.label_column)
    by_label = defaultdict(list)
    for text, label in zip(table.texts, table.labels):
        by_label[label].append(text)
    if len(by_label) < 2:
        raise at(path, None, f"one label ({next(iter(by_label), 'none')}): a negative needs another")
    rng, labels = random.Random(seed), sorted(by_label)
    anchors, positives, negatives = [], [], []
    for text, label in zip(table.texts, table.labels):
        others = [t for t in by_label[label] if t != text]
        if not others:
            continue
        anchors.append(text)
        positives.append(rng.choice(others))
        negatives.append(rng.choice(by_label[rng.choice([lab for lab in labels if lab != label])]))
        if max_examples and len(anchors) == max_examples:
            break
    return Dataset.from_dict({"anchor": anchors, "positive": positives, "negative_1": negatives})


def labelled_classes(data_cfg, max_examples: int | None) -> Dataset:
    """Each text with its label's index among the table's sorted labels (the class a classifier loss trains)."""
    table = read_labelled(training_file(data_cfg), data_cfg.text_column, data_cfg.label_column)
    index = {label: i for i, label in enumerate(sorted(set(table.labels)))}
    n = max_examples or len(table.texts)
    return Dataset.from_dict({"anchor": table.texts[:n], "label": [index[label] for label in table.labels[:n]]})


def graded_lists(data_cfg, max_examples: int | None) -> Dataset:
    """JSON lines ``{"query": text, "docs": [text, ...], "grades": [number, ...]}``; every list is cut to
    ``list_size`` (lists shorter than that are an error: a batch needs equal lists)."""
    path = training_file(data_cfg)
    size = data_cfg.list_size
    anchors, columns, labels = [], [[] for _ in range(size)], []
    for lineno, record in named_records(path, ("query", "docs", "grades")):
        docs, grades = record["docs"], record["grades"]
        if not isinstance(docs, list) or not isinstance(grades, list):
            raise at(path, lineno, "docs and grades are lists, one grade per doc")
        if len(docs) != len(grades):
            raise at(path, lineno, f"{len(docs)} docs but {len(grades)} grades")
        if len(docs) < size:
            raise at(path, lineno, f"{len(docs)} docs; data.list_size={size} needs at least that many")
        if not all(isinstance(doc, str) for doc in docs[:size]):
            raise at(path, lineno, f"docs {docs[:size]} are not all strings")
        if not all(isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g) for g in grades):
            raise at(path, lineno, f"grades {grades} are not all finite numbers")
        anchors.append(text_field(path, lineno, record, "query", empty=False))
        for column, doc in zip(columns, docs[:size]):
            column.append(doc)
        labels.append([float(g) for g in grades[:size]])
        if max_examples and len(anchors) == max_examples:
            break
    if not anchors:
        raise at(path, None, "no lists")
    return Dataset.from_dict({"anchor": anchors, **{f"candidate_{i + 1}": c for i, c in enumerate(columns)},
                              "label": labels})


def query_groups(data_cfg, max_examples: int | None, seed: int) -> Dataset:
    """A query with its positives and negatives per JSON line, as FlagEmbedding's fine-tuning files, Tevatron's
    and mteb's reranking samples hold them (:func:`~embedbench.data.beir.group_texts`): per query one positive
    and ``data.list_size - 1`` negatives, drawn with the seed as FlagEmbedding draws its ``train_group_size``
    (negatives repeat where a query has fewer)."""
    path = training_file(data_cfg)
    if data_cfg.list_size < 1:
        raise EmbedbenchError(f"data.list_size={data_cfg.list_size}: texts per query, the positive among them; "
                              "at least 1")
    rng, k = random.Random(seed), data_cfg.list_size - 1
    anchors, positives, negatives = [], [], [[] for _ in range(k)]
    for lineno, record in named_records(path, ("query",)):
        pos, neg = group_texts(path, lineno, record)
        if not pos:
            raise at(path, lineno, "no positive")
        if k and not neg:
            raise at(path, lineno, f"no negatives; data.list_size={data_cfg.list_size} takes {k} per query "
                                   "(data.list_size=1: query and positive only)")
        anchors.append(text_field(path, lineno, record, "query", empty=False))
        positives.append(rng.choice(pos))
        for column, text in zip(negatives, rng.sample(neg * math.ceil(k / max(len(neg), 1)), k)):
            column.append(text)
        if max_examples and len(anchors) == max_examples:
            break
    if not anchors:
        raise at(path, None, "no queries")
    return Dataset.from_dict({"anchor": anchors, "positive": positives,
                              **{f"negative_{i + 1}": column for i, column in enumerate(negatives)}})


def judged_pairs(data_cfg, max_examples: int | None) -> tuple[BeirDataset, list[tuple[str, str]]]:
    """The train split and its (query id, relevant doc id) pairs, every positive judgement."""
    ds = load_collection(data_cfg, data_cfg.train_split)
    pairs = [(qid, doc_id) for qid, docs in ds.qrels.items() for doc_id, grade in docs.items()
             if grade > 0 and doc_id in ds.corpus]  # a judged document missing from the corpus has no text
    pairs = pairs[:max_examples] if max_examples else pairs
    if not pairs:
        raise EmbedbenchError(f"data={data_cfg.name}: split {data_cfg.train_split!r} has no positive pairs")
    return ds, pairs


def qrels_pairs(data_cfg, max_examples: int | None) -> Dataset:
    """(query, relevant document) for every positive judgement of the train split."""
    ds, pairs = judged_pairs(data_cfg, max_examples)
    return Dataset.from_dict({"anchor": [ds.queries[q] for q, _ in pairs],
                              "positive": [ds.doc_text(d) for _, d in pairs]})


def qrels_training_set(data_cfg: DataConfig, max_examples: int | None, seed: int, encode: EncodeConfig,
                       cache: EmbeddingCache | None, device: str) -> Dataset:
    """Train qrels pairs; with ``data.negatives=mined`` k hard negatives each, and with a
    ``data.teacher`` the teacher's scores of [positive, negatives] as ``label``."""
    if data_cfg.negatives is None:
        return qrels_pairs(data_cfg, max_examples)
    from embedbench.data.mining import mine_negatives

    ds, pairs = judged_pairs(data_cfg, max_examples)
    mined = mine_negatives(ds, pairs, data_cfg.mining, encode, cache, seed, device)
    columns = {"anchor": [ds.queries[r["query"]] for r in mined.rows],
               "positive": [ds.doc_text(r["positive"]) for r in mined.rows]}
    for i in range(data_cfg.mining.count):
        columns[f"negative_{i + 1}"] = [ds.doc_text(r["negatives"][i]) for r in mined.rows]
    if data_cfg.teacher.kind:
        from embedbench.data.teacher import teacher_scores

        columns["label"] = teacher_scores(ds, mined.rows, data_cfg.teacher, encode, cache, data_cfg.mining.store,
                                          device)
    return Dataset.from_dict(columns)
