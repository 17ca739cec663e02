"""Files that appear whole or not at all."""
from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from embedbench.errors import EmbedbenchError


def disk_full(exc: BaseException, where: Path | None = None) -> bool:
    """A write failed for want of space: an OSError saying so, torch's or safetensors' wording of it, or (for
    writers whose errors say less, such as torch's "unexpected pos") a filesystem at ``where`` left with
    under 1 MiB free."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    if any(sign in str(exc) for sign in ("No space left on device", "StorageFull", "file write failed")):
        return True
    return where is not None and shutil.disk_usage(where).free < 1 << 20


@contextmanager
def atomic_write(path, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """Write a temporary file beside ``path`` and rename it into place once complete: readers (parallel
    jobs, a later run) see the old file or the whole new one, and a failed write leaves nothing behind. A
    full disk stops with one line naming ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if disk_full(exc):
            raise EmbedbenchError(f"{path}: no space left on device; nothing was written") from None
        raise


@contextmanager
def atomic_dir(path) -> Iterator[Path]:
    """A folder filled in a staging folder beside ``path`` and renamed into place once the body succeeds
    (replacing an older one); a failure leaves nothing behind."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        shutil.rmtree(path, ignore_errors=True)
        os.rename(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
