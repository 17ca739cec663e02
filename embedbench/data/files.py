"""Locating data files given relative to $EMBEDBENCH_DATA, and reading JSON-lines records."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from embedbench.errors import EmbedbenchError, at


def data_file(path: str, key: str) -> Path:
    """An absolute path as it is; a relative one from the working folder, else from $EMBEDBENCH_DATA. A file
    found nowhere stops with one line naming every place looked in."""
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        if not candidate.exists():
            raise EmbedbenchError(f"{key}={path}: file not found")
        return candidate
    root = os.environ.get("EMBEDBENCH_DATA")
    shared = Path(root).expanduser() / candidate if root else None
    if shared and shared.exists():
        return shared
    places = [str(candidate.resolve()), str(shared) if shared else "$EMBEDBENCH_DATA (not set)"]
    raise EmbedbenchError(f"{key}={path}: file not found in {' or '.join(places)}; give an absolute path or set "
                          "EMBEDBENCH_DATA=<data folder>")


def jsonl_records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line, each checked to be an object with ``required``."""
    path = Path(path)
    if not path.is_file():
        raise at(path, None, "file not found")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise at(path, lineno, f"not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise at(path, lineno, "expected a JSON object")
            missing = [key for key in required if key not in record]
            if missing:
                raise at(path, lineno, f"missing field {missing[0]!r}")
            yield lineno, record
