"""Locating data files given relative to $EMBEDBENCH_DATA."""
from __future__ import annotations

import os
from pathlib import Path

from embedbench.errors import EmbedbenchError


def data_file(path: str, key: str) -> Path:
    candidate = Path(path).expanduser()
    if candidate.is_absolute() or candidate.exists():
        return candidate
    root = os.environ.get("EMBEDBENCH_DATA")
    if not root:
        raise EmbedbenchError(f"{key}={path}: relative path and EMBEDBENCH_DATA is not set; "
                              "set EMBEDBENCH_DATA=<data folder> or give an absolute path")
    return Path(root).expanduser() / candidate
