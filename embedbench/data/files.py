"""Locating data files (the working folder, $EMBEDBENCH_DATA, the download cache), opening them as text
(compressed or not), and reading JSON-lines records."""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from embedbench.data.download import cache_dir, fetch
from embedbench.data.hub_tables import HubTable
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


# what a file's last extension says it is compressed with (large collections ship compressed): how to open it,
# and its name in errors
COMPRESSIONS = {".gz": (gzip.open, "gzip"), ".bz2": (bz2.open, "bzip2"), ".xz": (lzma.open, "xz")}


def uncompressed_name(path: Path) -> str:
    """The file's name less a compression's extension (``corpus.jsonl.gz``: ``corpus.jsonl``)."""
    return path.stem if path.suffix.lower() in COMPRESSIONS else path.name


def data_suffix(path: Path) -> str:
    """The extension that says a file's format, under a compression's (``corpus.jsonl.gz``: ``.jsonl``)."""
    return Path(uncompressed_name(path)).suffix.lower()


def _opener(path: Path):
    return COMPRESSIONS.get(path.suffix.lower(), (open, None))[0]


@contextmanager
def text_file(path: Path, newline: str | None = None) -> Iterator[IO[str]]:
    """``path`` opened as UTF-8 text, decompressed where it ends in ``.gz``, ``.bz2`` or ``.xz``, a byte-order
    mark dropped (Windows editors write one). Bytes that are not UTF-8, or a damaged archive, stop with one
    line naming the file (and the line) rather than a decoder's traceback."""
    compression = COMPRESSIONS.get(path.suffix.lower(), (None, None))[1]
    try:
        with _opener(path)(path, "rt", encoding="utf-8-sig", newline=newline) as fh:
            yield fh
    except UnicodeDecodeError as exc:
        raise at(path, _first_undecodable_line(path), f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); "
                 "save it as UTF-8") from None
    except (EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        # a truncated download ends in EOFError; a damaged stream is an OSError with no errno (a disk's has one)
        if compression is None or (isinstance(exc, OSError) and exc.errno is not None):
            raise
        raise at(path, None, f"not a whole {compression} file ({exc})") from None


def _first_undecodable_line(path: Path) -> int | None:
    # the decoder reads ahead by blocks, so the line is found again on the error path only
    with _opener(path)(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return lineno
    return None


def jsonl_records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line, each checked to be an object with ``required``."""
    path = Path(path)
    if not path.is_file():
        raise at(path, None, "file not found")
    with text_file(path) as fh:
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


def named_records(source: Path | HubTable, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """(line or row number, object) for each record of a jsonl file or a Hugging Face dataset's split."""
    return source.records(required) if isinstance(source, HubTable) else jsonl_records(source, required)


def text_lines(path: Path) -> list[str]:
    """The file's lines, split at line breaks only: ``str.splitlines`` would also split a text at the Unicode
    separators (U+2028, U+0085...) that scraped text carries, and shift every line after it."""
    with text_file(Path(path)) as fh:  # universal newlines: CRLF and CR end a line too
        content = fh.read()
    return content.removesuffix("\n").split("\n") if content else []
