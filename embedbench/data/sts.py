"""STS Benchmark files: genre, file, year, id, score, sentence1, sentence2[, licence columns].

Sentences contain quote characters, so fields are split on tabs only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedbench.errors import at


@dataclass
class ScoredPairs:
    sentences1: list[str]
    sentences2: list[str]
    scores: list[float]


def read_sts(path: Path, min_score: float = 0.0, max_score: float = 5.0) -> ScoredPairs:
    path = Path(path)
    if not path.is_file():
        raise at(path, None, "file not found")
    pairs = ScoredPairs([], [], [])
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 7:
                raise at(path, lineno, f"expected at least 7 tab-separated fields, got {len(fields)}")
            try:
                score = float(fields[4])
            except ValueError:
                raise at(path, lineno, f"score {fields[4]!r} is not a number") from None
            if not min_score <= score <= max_score:
                raise at(path, lineno, f"score {score} is outside [{min_score}, {max_score}]")
            pairs.sentences1.append(fields[5])
            pairs.sentences2.append(fields[6])
            pairs.scores.append(score)
    if not pairs.scores:
        raise at(path, None, "no pairs")
    return pairs
