"""Labelled texts and labelled pairs from table files: csv (quoted, header), tsv / txt (tab, header,
no quoting: sentences carry quote characters), jsonl; or two line-aligned text files.

Every error names the file and line, and empty splits are refused before any encoding.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from embedbench.data.files import jsonl_records
from embedbench.errors import at


@dataclass
class LabelledTexts:
    texts: list[str]
    labels: list[str]


@dataclass
class LabelledPairs:
    sentences1: list[str]
    sentences2: list[str]
    labels: list[int]  # 1: same meaning, 0: not


def rows(path: Path, columns: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) for each record, checking that the named columns are there."""
    path = Path(path)
    if path.suffix == ".jsonl":
        yield from ((n, {c: str(r[c]) for c in columns}) for n, r in jsonl_records(path, tuple(columns)))
        return
    if not path.is_file():
        raise at(path, None, "file not found")
    with open(path, encoding="utf-8-sig", newline="") as fh:  # -sig: MRPC starts with a BOM
        tabbed = path.suffix in (".tsv", ".txt")
        reader = csv.DictReader(fh, delimiter="\t" if tabbed else ",",
                                quoting=csv.QUOTE_NONE if tabbed else csv.QUOTE_MINIMAL)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise at(path, 1, f"header has no column {missing[0]!r} (columns: {reader.fieldnames})")
        start = 2
        for record in reader:
            if None in record.values() or None in record:
                raise at(path, start, f"expected {len(reader.fieldnames)} fields")
            yield start, record
            start = reader.line_num + 1


def read_labelled(path, text_column: str = "text", label_column: str = "label") -> LabelledTexts:
    out = LabelledTexts([], [])
    for _, record in rows(path, [text_column, label_column]):
        out.texts.append(record[text_column])
        out.labels.append(record[label_column])
    if not out.texts:
        raise at(path, None, "no rows")
    return out


def read_line_aligned(texts_path, labels_path) -> LabelledTexts:
    """One text per line in one file, its label on the same line of the other (STC2 clustering sets)."""
    lines = []
    for path in (Path(texts_path), Path(labels_path)):
        if not path.is_file():
            raise at(path, None, "file not found")
        lines.append(path.read_text(encoding="utf-8").splitlines())
    texts, labels = lines
    if len(texts) != len(labels):
        raise at(labels_path, None, f"{len(labels)} labels for {len(texts)} texts in {texts_path}")
    for lineno, label in enumerate(labels, 1):
        if not label.strip():
            raise at(labels_path, lineno, "empty label")
    if not texts:
        raise at(texts_path, None, "no rows")
    return LabelledTexts(texts, [label.strip() for label in labels])


def read_labelled_pairs(path, text1_column: str, text2_column: str, label_column: str) -> LabelledPairs:
    out = LabelledPairs([], [], [])
    for lineno, record in rows(path, [text1_column, text2_column, label_column]):
        label = record[label_column].strip()
        if label not in ("0", "1"):
            raise at(path, lineno, f"label {label!r} is not 0 or 1")
        out.sentences1.append(record[text1_column])
        out.sentences2.append(record[text2_column])
        out.labels.append(int(label))
    if not out.labels:
        raise at(path, None, "no rows")
    if len(set(out.labels)) < 2:
        raise at(path, None, "every pair has the same label; average precision needs both")
    return out
