"""On-disk embedding cache: the same weights, pooling, length and texts are never encoded twice.

An entry holds one layer's pooled (un-normalised) embeddings, so any dim, index or metric
can be computed from it. Keys hash everything that changes the numbers: the weights
themselves (not their path), the pooling head, max length, precision, layer and the texts.
The same folder keeps the models OpenVINO converted (:mod:`embedbench.embedding.runtimes`), within
the same bound. Writes go to a temporary file renamed into place, so parallel jobs never read a torn
entry; the folder is trimmed to a size bound, oldest-used first.
"""
from __future__ import annotations

import hashlib
import inspect
import io
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from embedbench.atomic import atomic_write
from embedbench.embedding.heads import SAVED_BIDIRECTIONAL
from embedbench.embedding.long import SAVED_WINDOW
from embedbench.embedding.prompts import Prompted

log = logging.getLogger("embedbench")
DIGEST_BYTES = 32  # the SHA-256 that ends every entry
COPY_CHUNK = 64 << 20  # a file's bytes are copied into (and checked in) an entry this many at a time


def weights_fingerprint(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def code_fingerprint(module: torch.nn.Module) -> str:
    """The source file of the module's class: the same weights under edited modelling code (a model's own code,
    a transformers upgrade) compute other numbers."""
    source = inspect.getsourcefile(type(module))
    return hashlib.sha256(Path(source).read_bytes()).hexdigest() if source else ""


def texts_fingerprint(texts: list[str]) -> str:
    digest = hashlib.sha256(str(len(texts)).encode())
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        if isinstance(text, Prompted):  # where its prompt ends: a pooling that leaves the prompt out reads it
            digest.update(f"\1{len(text.prompt)}".encode())
        digest.update(b"\0")
    return digest.hexdigest()


def model_fingerprint(encoder, precision: str, backend: str = "torch") -> str:
    """Weights, pooling head, max length, precision, runtime, a causal mask removed, the transformer's code and
    a long-input strategy (rotary frequencies are not in the state dict; chunking changes no weight): all that
    changes a text's embedding."""
    parts = [weights_fingerprint(encoder.model), repr(encoder.heads), str(encoder.model.max_seq_length), precision,
             backend]
    network = getattr(encoder.model[0], "auto_model", None)
    if network is not None:
        config = network.config
        # the marks loading leaves on the attention: the same weights, causal or not, rotated as trained or
        # extended; and the code that runs them
        parts += [f"{key}={getattr(config, key)}" for key in (SAVED_BIDIRECTIONAL, SAVED_WINDOW)
                  if getattr(config, key, None)]
        parts.append(code_fingerprint(network))
    if encoder.model.truncate_dim:  # a model saved with a narrower width than its heads give
        parts.append(f"truncate_dim={encoder.model.truncate_dim}")
    if encoder.options.get("long", "truncate") != "truncate":
        parts += [str(encoder.options.get(key)) for key in ("long", "long_length", "long_pooling")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def open_cache(eval_cfg) -> EmbeddingCache | None:
    """The cache ``eval.cache`` asks for (``eval.cache_dir``, bounded by ``eval.cache_max_gb``), or None."""
    if not eval_cfg.cache:
        return None
    return EmbeddingCache(Path(eval_cfg.cache_dir), float(eval_cfg.cache_max_gb) * 2**30)


class EmbeddingCache:
    """Entries are ``.npy`` bytes followed by their SHA-256: an entry cut short by a crash or altered on disk
    is found out when read, reported, and encoded again, never scored."""

    FORMAT = "v2"  # in the key: entries of another layout are never read, and get trimmed in time
    SUFFIXES = (".npy", ".ov")  # layers' embeddings; converted models

    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.misses = 0

    def _path(self, model_key: str, texts_key: str, layer: int) -> Path:
        key = hashlib.sha256(f"{model_key}|{texts_key}|{layer}|{self.FORMAT}".encode()).hexdigest()
        return self.root / key[:2] / f"{key}.npy"

    def get(self, model_key: str, texts: list[str], layers: list[int]) -> dict[int, torch.Tensor] | None:
        """Every requested layer, or None when any is missing (then one pass encodes them all)."""
        texts_key = texts_fingerprint(texts)
        paths = {layer: self._path(model_key, texts_key, layer) for layer in layers}
        if not all(p.is_file() for p in paths.values()):
            self.misses += 1
            return None
        loaded = {}
        for layer, path in paths.items():
            try:
                loaded[layer] = self._read(path, len(texts))
            except FileNotFoundError:  # trimmed by a parallel job meanwhile
                self.misses += 1
                return None
            except ValueError as exc:
                log.warning("embedding cache: %s is damaged (%s); encoding again", path, exc)
                self.misses += 1
                return None
            os.utime(path)  # recently used: trimmed last
        self.hits += 1
        return loaded

    @staticmethod
    def _read(path: Path, rows: int) -> torch.Tensor:
        _check_file(path)
        array = np.load(path)  # reads the array's values and no further: the SHA-256 after them is left
        if array.ndim != 2 or array.shape[0] != rows:
            raise ValueError(f"shape {array.shape}, expected {rows} rows")
        return torch.from_numpy(array)

    def put(self, model_key: str, texts: list[str], pooled: dict[int, torch.Tensor]) -> None:
        texts_key = texts_fingerprint(texts)
        for layer, tensor in pooled.items():
            buffer = io.BytesIO()
            np.save(buffer, tensor.numpy())
            _write_checked(self._path(model_key, texts_key, layer), [buffer.getbuffer()])
        self.trim()

    def _blob_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.ov"

    def blob_file(self, key: str) -> Path | None:
        """The file of the blob kept under ``key`` (a converted or quantised model): its bytes, then their
        SHA-256 (:data:`DIGEST_BYTES`), checked a chunk at a time, so a reader can map the file rather than
        hold it in memory; None when absent or damaged (reported)."""
        path = self._blob_path(key)
        try:
            _check_file(path)
        except FileNotFoundError:
            return None
        except ValueError as exc:
            log.warning("embedding cache: %s is damaged (%s); the model is made again", path, exc)
            return None
        os.utime(path)
        return path

    def keeps(self, size: int) -> bool:
        """Whether a blob of ``size`` bytes would be kept: not one that alone takes over half the size bound."""
        return size <= self.max_bytes // 2

    def put_blob(self, key: str, parts: Sequence[bytes | Path]) -> None:
        """Keep the bytes of ``parts``, in order, under ``key`` if :meth:`keeps` them. A :class:`Path` part is
        copied from its file a chunk at a time, so a model's weights are never whole in memory a second time."""
        if self.keeps(sum(part.stat().st_size if isinstance(part, Path) else len(part) for part in parts)):
            _write_checked(self._blob_path(key), parts)
            self.trim()

    def trim(self) -> None:
        entries = []
        for path in (path for suffix in self.SUFFIXES for path in self.root.glob(f"*/*{suffix}")):
            try:
                stat = path.stat()
            except FileNotFoundError:  # removed by a parallel job
                continue
            entries.append((stat.st_mtime, stat.st_size, path))  # get() touches what it reads
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size


def _check_file(path: Path) -> None:
    """ValueError where an entry's bytes do not match the SHA-256 that ends it; read a chunk at a time, so an
    entry is never whole in memory twice."""
    size = path.stat().st_size - DIGEST_BYTES
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for start in range(0, max(size, 0), COPY_CHUNK):
            digest.update(fh.read(min(COPY_CHUNK, size - start)))
        if size <= 0 or digest.digest() != fh.read():
            raise ValueError("checksum mismatch: cut short or altered")


def _write_checked(path: Path, parts: Sequence[bytes | Path]) -> None:
    digest = hashlib.sha256()
    with atomic_write(path, "wb") as fh:
        for chunk in (chunk for part in parts for chunk in _chunks(part)):
            fh.write(chunk)
            digest.update(chunk)
        fh.write(digest.digest())


def _chunks(part: bytes | Path) -> Iterator[bytes]:
    if isinstance(part, Path):
        with part.open("rb") as source:
            yield from iter(lambda: source.read(COPY_CHUNK), b"")
    else:
        yield part
