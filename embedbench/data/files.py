"""Locating data files (the working folder, $EMBEDBENCH_DATA, the download cache), and reading JSON-lines
records."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from embedbench.data.download import cache_dir, fetch
from embedbench.errors import EmbedbenchError, at


def data_file(path: str, key: str, source=None) -> Path:
    """An absolute path as it is; a relative one from the working folder, else from $EMBEDBENCH_DATA, else
    from the cache, where ``source`` (a :class:`embedbench.config.Download` of a file of the same name) is
    fetched to. A file found nowhere stops with one line naming every place looked in."""
    candidate = Path(path).expanduser()
    if candidate.exists():
        return candidate
    root = os.environ.get("EMBEDBENCH_DATA")
    shared = Path(root).expanduser() / candidate if root and not candidate.is_absolute() else None
    if shared and shared.exists():
        return shared
    places = [str(candidate.resolve())]
    if not candidate.is_absolute():
        places.append(str(shared) if shared else "$EMBEDBENCH_DATA (not set)")
    # the source is the shipped file's: a path pointed elsewhere (absolute, or another file name) never gets it
    if source is not None and not candidate.is_absolute() and candidate.name == Path(source.url).name:
        cached = cache_dir() / "files" / candidate
        if cached.exists():  # published only once its hash checked out
            return cached
        try:
            return fetch(source.url, cached, "sha256", source.sha256)
        except EmbedbenchError as exc:
            raise EmbedbenchError(f"{key}={path}: not in {' or '.join(places)}, and {exc}") from None
    raise EmbedbenchError(f"{key}={path}: file not found in {' or '.join(places)}; give an absolute path or set "
                          "EMBEDBENCH_DATA=<data folder>")


def jsonl_records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line, each checked to be an object with ``required``."""
    path = Path(path)
    if not path.is_file():
        raise at(path, None, "file not found")
    with open(path, encoding="utf-8-sig") as fh:  # -sig: a byte-order mark (Windows editors write one) is dropped
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


def text_lines(path: Path) -> list[str]:
    """The file's lines, split at line breaks only: ``str.splitlines`` would also split a text at the Unicode
    separators (U+2028, U+0085...) that scraped text carries, and shift every line after it."""
    content = Path(path).read_text(encoding="utf-8-sig")  # universal newlines: CRLF and CR end a line too
    return content.removesuffix("\n").split("\n") if content else []
