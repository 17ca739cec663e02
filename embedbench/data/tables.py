"""Texts, labels and scores from table files, with the columns a task reads mapped by name or position.

A file is csv (quoted fields), tsv (tab-separated, no quoting: sentences carry quote characters) or jsonl; its
format comes from the extension (``.txt`` is tab-separated; a ``.gz``, ``.bz2`` or ``.xz`` after it is
decompressed) unless the task says. Columns given by name mean the first line is the header; columns given by
position (0-based) mean there is none, unless the task says otherwise. Whatever does not fit (a short row, a
score that is no number, a text column that holds numbers or a handful of labels, a label column that holds free
text) stops with one line naming the file, the line and the column: a wrong column never becomes a score.
"""
from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from embedbench.data.files import data_suffix, named_records, text_file, text_lines
from embedbench.data.hub_tables import HubTable
from embedbench.errors import at

Column = str | int  # a header name, or a 0-based position

FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".jsonl": "jsonl"}


@dataclass(frozen=True)
class Layout:
    format: str | None = None  # csv / tsv / jsonl; None: from the extension
    header: bool | None = None  # None: a header exactly when a column is given by name


@dataclass
class LabelledTexts:
    texts: list[str]
    labels: list[str]


@dataclass
class LabelledPairs:
    sentences1: list[str]
    sentences2: list[str]
    labels: list[int]  # 1: same meaning, 0: not


@dataclass
class ScoredPairs:
    sentences1: list[str]
    sentences2: list[str]
    scores: list[float]


def file_format(path: Path, layout: Layout) -> str:
    if layout.format:
        return layout.format
    suffix = data_suffix(path)
    if suffix not in FORMATS:
        raise at(path, None, f"cannot tell the format from the extension {suffix!r}: set format "
                             f"({', '.join(sorted(set(FORMATS.values())))})")
    return FORMATS[suffix]


def read_columns(path: Path | str | HubTable, columns: dict[str, Column],
                 layout: Layout = Layout()) -> tuple[dict[str, list[str]], list[int]]:
    """Each role's column as strings (``{"text": [...], "label": [...]}``) and each row's line number."""
    path = path if isinstance(path, HubTable) else Path(path)
    values: dict[str, list[str]] = {role: [] for role in columns}
    lines = []
    for lineno, row in table_rows(path, columns, layout):
        lines.append(lineno)
        for role, value in row.items():
            values[role].append(value)
    if not lines:
        raise at(path, None, "no rows")
    return values, lines


def table_rows(path: Path, columns: dict[str, Column], layout: Layout) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {role: field}) for every non-blank row, each checked to hold the columns asked for."""
    kind = "jsonl" if isinstance(path, HubTable) else file_format(path, layout)
    if kind == "jsonl":
        positional = [c for c in columns.values() if isinstance(c, int)]
        if positional:
            raise at(path, None, f"column {positional[0]}: columns are named here, not numbered")
        for lineno, record in named_records(path, tuple(columns.values())):
            yield lineno, {role: _text(path, lineno, name, record[name]) for role, name in columns.items()}
        return
    if not path.is_file():
        raise at(path, None, "file not found")
    header = layout.header if layout.header is not None else any(isinstance(c, str) for c in columns.values())
    with text_file(path, newline="") as fh:
        reader = (csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE) if kind == "tsv" else csv.reader(fh))
        start, index = 1, None
        for row in reader:
            lineno, start = start, reader.line_num + 1
            if not any(field.strip() for field in row):
                continue
            if index is None:
                index = _positions(path, columns, row if header else None, _format_hint(kind, row))
                if header:
                    continue
            wanted = max(index.values()) + 1
            if len(row) < wanted:
                raise at(path, lineno, f"{len(row)} field(s); column {_label(columns, index, wanted - 1)} "
                                       f"needs at least {wanted}{_format_hint(kind, row)}")
            yield lineno, {role: row[i] for role, i in index.items()}


def _format_hint(kind: str, row: list[str]) -> str:
    """For a CSV row read whole as one field that holds tabs, the format that reads it (STS Benchmark's ``.csv``
    files are tab-separated); not the reverse, as texts hold commas."""
    return "; its fields are split by tabs: format: tsv" if kind == "csv" and len(row) == 1 and "\t" in row[0] \
        else ""


def _positions(path: Path, columns: dict[str, Column], names: list[str] | None, hint: str = "") -> dict[str, int]:
    names = names and [name.strip() for name in names]  # "question, answer": a space after each comma
    index = {}
    for role, column in columns.items():
        if isinstance(column, int):
            index[role] = column
        elif names is None:
            raise at(path, None, f"column {column!r} is a name, but the file is read without a header")
        elif column not in names:
            raise at(path, 1, f"header has no column {column!r} (columns: {', '.join(names)}){hint}")
        else:
            index[role] = names.index(column)
    return index


def _label(columns: dict[str, Column], index: dict[str, int], position: int) -> str:
    return next(repr(columns[role]) for role, i in index.items() if i == position)


def _text(path: Path, lineno: int, name: str, value) -> str:
    """A jsonl field as text: numbers (labels, scores) as written; a null is refused rather than read as 'None',
    and a list or an object rather than trained on as its Python spelling."""
    if value is None:
        raise at(path, lineno, f"field {name!r} is null")
    if isinstance(value, (list, dict)):
        raise at(path, lineno, f"field {name!r} holds a{'n object' if isinstance(value, dict) else ' list'}, not a "
                               "text or a number")
    return value if isinstance(value, str) else str(value)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def check_text(path, column: Column, values: list[str], lines: list[int]) -> None:
    """Text columns hold text: not only numbers, not a few labels repeated (a column mapped one off)."""
    numeric = [i for i, v in enumerate(values) if _is_number(v.strip())]
    if len(numeric) == len(values):
        raise at(path, lines[0], f"text column {column!r} holds numbers ({values[0]!r}): map it to the text")
    distinct = len(set(values))
    if len(values) >= 20 and distinct * 10 <= len(values):
        raise at(path, lines[0], f"text column {column!r} holds {distinct} distinct values over {len(values)} "
                                 f"rows ({values[0]!r}, ...): labels, not text")


def check_labels(path, column: Column, values: list[str], lines: list[int]) -> None:
    """Label columns name a class: a column of nearly all-distinct values is text mapped as labels."""
    distinct = len(set(values))
    if len(values) >= 20 and distinct * 2 > len(values):
        raise at(path, lines[0], f"label column {column!r} holds {distinct} distinct values over {len(values)} "
                                 f"rows ({values[0]!r}, ...): text, not labels")


def read_labelled(path, text_column: Column = "text", label_column: Column = "label",
                  layout: Layout = Layout()) -> LabelledTexts:
    values, lines = read_columns(path, {"text": text_column, "label": label_column}, layout)
    check_text(path, text_column, values["text"], lines)
    check_labels(path, label_column, values["label"], lines)
    return LabelledTexts(values["text"], [label.strip() for label in values["label"]])


def read_text_pairs(path, text1_column: Column, text2_column: Column, role: str, column: Column,
                    layout: Layout) -> tuple[dict[str, list[str]], list[int]]:
    """Both text columns (each checked to hold text) and the pair's ``role`` column, with each row's line."""
    columns = {"text1": text1_column, "text2": text2_column, role: column}
    values, lines = read_columns(path, columns, layout)
    for text in ("text1", "text2"):
        check_text(path, columns[text], values[text], lines)
    return values, lines


def read_labelled_pairs(path, text1_column: Column, text2_column: Column, label_column: Column,
                        layout: Layout = Layout()) -> LabelledPairs:
    values, lines = read_text_pairs(path, text1_column, text2_column, "label", label_column, layout)
    labels = []
    for lineno, label in zip(lines, values["label"]):
        if label.strip() not in ("0", "1"):
            raise at(path, lineno, f"label column {label_column!r}: {label!r} is not 0 or 1")
        labels.append(int(label))
    if len(set(labels)) < 2:
        raise at(path, None, "every pair has the same label; average precision needs both")
    return LabelledPairs(values["text1"], values["text2"], labels)


def read_scored_pairs(path, text1_column: Column, text2_column: Column, score_column: Column,
                      layout: Layout = Layout(), min_score: float = 0.0, max_score: float = 5.0) -> ScoredPairs:
    values, lines = read_text_pairs(path, text1_column, text2_column, "score", score_column, layout)
    scores = []
    for lineno, value in zip(lines, values["score"]):
        try:
            score = float(value)
        except ValueError:
            raise at(path, lineno, f"score column {score_column!r}: {value!r} is not a number") from None
        if not min_score <= score <= max_score:
            raise at(path, lineno, f"score column {score_column!r}: {score} is outside [{min_score}, {max_score}] "
                                   "(set min_score / max_score)")
        scores.append(score)
    if len(set(scores)) < 2:
        raise at(path, None, f"every pair has the score {scores[0]}; a ranking of the pairs needs scores that differ")
    return ScoredPairs(values["text1"], values["text2"], scores)


def read_sts_benchmark(path, min_score: float = 0.0, max_score: float = 5.0) -> ScoredPairs:
    """The STS Benchmark layout (tab-separated despite its .csv names: genre, file, year, id, score, sentence1,
    sentence2[, licence columns]), which the STS task's column defaults describe too."""
    return read_scored_pairs(path, 5, 6, 4, Layout("tsv"), min_score, max_score)


def read_line_aligned(texts_path, labels_path) -> LabelledTexts:
    """One text per line in one file, its label on the same line of the other (STC2 clustering sets)."""
    lines = []
    for path in (Path(texts_path), Path(labels_path)):
        if not path.is_file():
            raise at(path, None, "file not found")
        lines.append(text_lines(path))
    texts, labels = lines
    if len(texts) != len(labels):
        raise at(labels_path, None, f"{len(labels)} labels for {len(texts)} texts in {texts_path}")
    for lineno, label in enumerate(labels, 1):
        if not label.strip():
            raise at(labels_path, lineno, "empty label")
    if not texts:
        raise at(texts_path, None, "no rows")
    check_text(texts_path, 0, texts, list(range(1, len(texts) + 1)))
    return LabelledTexts(texts, [label.strip() for label in labels])
