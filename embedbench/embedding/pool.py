"""Encoding sharded over several devices: one worker process per device, each holding the model.

The texts are sorted by token length and dealt round-robin, so every device gets the same number of
tokens (and the same padding-free batches it would have had alone); each shard goes in chunks, so the
progress bar moves and a worker's results stay small. Workers run the same :class:`LayerEncoder` and
runtime as a single process would, so the embeddings differ from a one-device pass only by the
rounding of differently composed batches.
"""
from __future__ import annotations

import math
import queue
import shutil
import tempfile
import weakref

import numpy as np
import torch
import torch.multiprocessing as mp
from tqdm.auto import tqdm

from embedbench.distributed import world_size
from embedbench.errors import EmbedbenchError

CHUNK_TEXTS = 2048


def resolve_devices(devices, device: str) -> list[str]:
    """``encode.devices``: ``auto`` is every visible GPU when the run is on CUDA (one process under
    torchrun, whose ranks already hold a GPU each), else the run's own device; or an explicit list."""
    if devices in (None, "auto"):
        count = torch.cuda.device_count() if device.startswith("cuda") else 0
        return [f"cuda:{i}" for i in range(count)] if count > 1 and world_size() == 1 else [device]
    devices = [str(d) for d in devices]
    for name in devices:
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise EmbedbenchError(f"encode.devices: {name} asked for, but CUDA is not available on this machine")
        if not (name == "cpu" or name.startswith("cuda")):
            raise EmbedbenchError(f"encode.devices: {name} is not a device (cpu, cuda or cuda:N)")
    return devices


def deal(lengths: np.ndarray, n: int) -> list[np.ndarray]:
    """Text indices for ``n`` encoders, dealt round-robin in decreasing token length: equal tokens each."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i::n] for i in range(n)]


def _worker(model: dict, device: str, threads: int, precision: str, backend: str, batch_size: int, jobs, results):
    from embedbench.embedding.encoder import load_encoder

    torch.set_num_threads(threads)
    encoder = load_encoder(device=device, **model)
    runtime = encoder.runtime(precision, backend)
    while (job := jobs.get()) is not None:
        key, texts, layers, lengths = job
        try:
            results.put((key, encoder.encode(texts, layers, batch_size, runtime=runtime, lengths=lengths,
                                        progress=False), None))
        except Exception as exc:  # report it: the parent would otherwise wait forever
            results.put((key, None, f"{type(exc).__name__}: {exc}"))


class EncoderPool:
    """``encode(texts, layers, desc)`` like :meth:`LayerEncoder.encode`, over one process per device."""

    def __init__(self, encoder, devices: list[str], precision: str, backend: str, batch_size: int):
        context = mp.get_context("spawn")  # CUDA cannot be used in forked children
        self.encoder, self.devices, self.failure = encoder, devices, None
        # the workers load the weights as they are now from a folder (a model that has run a forward
        # carries transformers' hooks, which cannot be pickled to a process): the one they were loaded
        # from while no step has changed them, else a temporary copy
        source = encoder.weights_folder
        self.folder = None if source else tempfile.mkdtemp(prefix="embedbench-encoder-")
        if self.folder:
            encoder.model.save(self.folder, safe_serialization=True)
        length = encoder.model.max_seq_length  # a static model reads whole texts: no length to pass on
        model = {**encoder.options, "name_or_path": source or self.folder,
                 "max_seq_length": length if length != math.inf else None,
                 "trust_remote_code": encoder.model.trust_remote_code}
        self.jobs = [context.Queue() for _ in devices]
        self.results = context.Queue()
        threads = max(1, torch.get_num_threads() // sum(d == "cpu" for d in devices)) if "cpu" in devices else 1
        self.workers = [context.Process(target=_worker, daemon=True,
                                        args=(model, device, threads, precision, backend, batch_size,
                                              jobs, self.results))
                        for device, jobs in zip(devices, self.jobs)]
        for worker in self.workers:
            worker.start()
        self._finalizer = weakref.finalize(self, _stop, self.jobs, self.workers, self.folder)

    def encode(self, texts: list[str], layers: list[int], desc: str = "encode") -> dict[int, torch.Tensor]:
        if self.failure:
            raise EmbedbenchError(f"encoding on {self.devices}: the pool stopped after an earlier error "
                                  f"({self.failure})")
        lengths = self.encoder.token_lengths(texts)  # tokenised once here, the workers batch by them
        chunks = {}
        for shard, jobs in zip(deal(lengths, len(self.jobs)), self.jobs):
            for start in range(0, len(shard), CHUNK_TEXTS):
                rows = shard[start:start + CHUNK_TEXTS]
                chunks[len(chunks)] = rows
                jobs.put((len(chunks) - 1, [texts[i] for i in rows], layers, lengths[rows]))
        result = {layer: torch.empty(len(texts), self.encoder.hidden_size) for layer in layers}
        with tqdm(total=int(lengths.sum()), desc=f"{desc} ({len(self.devices)} devices)", unit="tok",
                  unit_scale=True) as progress:
            for _ in range(len(chunks)):
                key, pooled, error = self._next_result()
                if error:
                    self._fail(error)
                    raise EmbedbenchError(f"encoding on {self.devices} failed in a worker: {error}")
                rows = torch.from_numpy(chunks[key])
                for layer in layers:
                    result[layer][rows] = pooled[layer]
                progress.update(int(lengths[chunks[key]].sum()))
        return result

    def _next_result(self):
        while True:
            try:
                return self.results.get(timeout=5)
            except queue.Empty:  # a worker killed outright (out of memory) reports nothing
                for device, worker in zip(self.devices, self.workers):
                    if not worker.is_alive():
                        self._fail(f"the worker on {device} died")
                        raise EmbedbenchError(f"encode.devices: the worker on {device} died "
                                              f"(exit code {worker.exitcode})") from None

    def _fail(self, reason: str) -> None:
        """Stop every worker now: the failed call's other chunks are still queued or in flight, and a later
        call must not read them as its own."""
        self.failure = reason
        for worker in self.workers:
            worker.terminate()
        self._finalizer()


def _stop(jobs, workers, folder: str | None) -> None:
    for device_jobs in jobs:
        device_jobs.put(None)
    for worker in workers:
        worker.join(timeout=10)
        if worker.is_alive():
            worker.terminate()
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
