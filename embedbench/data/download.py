"""Downloads into the cache: resumed after an interruption, checked against a published hash, unpacked
without leaving the cache folder, and published with one rename, so no run ever reads half a file or half
a data set."""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from embedbench.errors import EmbedbenchError

CHUNK = 1 << 20


def cache_dir() -> Path:
    return Path(os.environ.get("EMBEDBENCH_CACHE", Path.home() / ".cache" / "embedbench"))


def digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def fetch(url: str, target: Path, algorithm: str, expected: str | None) -> Path:
    """``url`` saved as ``target``. Bytes arrive in ``target.part``, which a later call continues with an HTTP
    range request; the file takes its name only once its ``algorithm`` hash is ``expected`` (``None``: the
    source publishes none, and the file is taken as it comes)."""
    if target.exists():  # published only once complete and checked
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            resumed = have and response.status == 206
            have = have if resumed else 0
            size = response.headers.get("Content-Length")
            total = have + int(size) if size is not None else None
            with open(partial, "ab" if resumed else "wb") as out, \
                    tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=f"downloading {target.name}",
                         disable=total is not None and total < 8 * CHUNK) as progress:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    progress.update(len(chunk))
        if total is not None and partial.stat().st_size < total:
            raise ConnectionError(f"the connection closed at {partial.stat().st_size} of {total} bytes")
    except urllib.error.HTTPError as exc:
        if exc.code != 416:  # 416: the range starts at the end, so the file is complete
            raise EmbedbenchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        kept = partial.stat().st_size if partial.exists() else 0
        resume = f"; {kept} bytes kept in {partial}, the next run continues from there" if kept else ""
        raise EmbedbenchError(f"{url}: download failed ({getattr(exc, 'reason', exc)}){resume}") from None
    if expected:
        got = digest(partial, algorithm)
        if got != expected.lower():
            partial.unlink()
            raise EmbedbenchError(f"{url}: {algorithm} is {got}, the published one is {expected}: "
                                  "the download was discarded")
    os.replace(partial, target)
    return target


def unpack(archive: Path, target: Path) -> Path:
    """The zip's content as the folder ``target`` (a single top folder in the zip is taken as the content),
    published with one rename. An entry that would land outside ``target`` refuses the whole archive."""
    staging = target.with_name(f".{target.name}.unpack-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            root = staging.resolve()
            for entry in zf.namelist():
                landing = (staging / entry).resolve()
                if landing != root and root not in landing.parents:
                    raise EmbedbenchError(f"{archive}: entry {entry!r} would be written outside {target}; "
                                          "the archive was refused")
            zf.extractall(staging)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise EmbedbenchError(f"{archive}: not a zip archive ({exc})") from None
    except EmbedbenchError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    top = [p for p in staging.iterdir() if not p.name.startswith("__MACOSX")]
    content = top[0] if len(top) == 1 and top[0].is_dir() else staging
    try:
        os.rename(content, target)
    except OSError:
        if not target.is_dir():  # else a concurrent run published the same data first
            raise
    shutil.rmtree(staging, ignore_errors=True)
    return target
