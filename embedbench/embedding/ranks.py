"""Encoding shared by the ranks of a ``torchrun`` eval: rank 0 runs the job, every rank encodes a share.

Rank 0 tokenises each list of texts once, deals it by token length (as the device pool does, so every
rank gets the same number of tokens), scatters the shares, encodes its own and gathers the others; the
other ranks only encode what they are dealt until rank 0 says stop. Tasks, indexes, scoring and logging
stay on rank 0: the metrics are one process's, up to the rounding of differently composed batches.
"""
from __future__ import annotations

import torch
import torch.distributed as dist

from embedbench.distributed import world_size
from embedbench.embedding.pool import deal
from embedbench.errors import EmbedbenchError

STOP = None


class RankShards:
    """``encode(texts, layers, desc)`` like :meth:`LayerEncoder.encode`, over every rank of the process group."""

    def __init__(self, encoder, runtime, batch_size: int):
        self.encoder, self.runtime, self.batch_size = encoder, runtime, batch_size

    def encode(self, texts: list[str], layers: list[int], desc: str = "encode") -> dict[int, torch.Tensor]:
        lengths = self.encoder.token_lengths(texts)
        shares = deal(lengths, world_size())
        job = [None]
        dist.scatter_object_list(job, [([texts[i] for i in rows], layers, lengths[rows]) for rows in shares], src=0)
        gathered = [None] * world_size()
        dist.gather_object(_encode(self.encoder, self.runtime, self.batch_size, job[0],
                                   f"{desc} (rank 0 of {world_size()})"), gathered, dst=0)
        result = {layer: torch.empty(len(texts), self.encoder.hidden_size) for layer in layers}
        for rank, (rows, (pooled, error)) in enumerate(zip(shares, gathered)):
            if error:
                raise EmbedbenchError(f"encoding on rank {rank} of {world_size()} failed: {error}")
            for layer in layers:
                result[layer][torch.from_numpy(rows)] = pooled[layer]
        return result


def serve(embedder) -> None:
    """A rank other than 0: encode each share rank 0 deals, with ``embedder``'s runtime, until it says stop."""
    runtime = embedder.runtime()
    while True:
        job = [None]
        dist.scatter_object_list(job, None, src=0)
        if job[0] is STOP:
            return
        dist.gather_object(_encode(embedder.encoder, runtime, embedder.batch_size, job[0], None), None, dst=0)


def stop() -> None:
    """Rank 0, whether the eval finished or failed: the other ranks leave their loop and exit."""
    dist.scatter_object_list([None], [STOP] * world_size(), src=0)


def _encode(encoder, runtime, batch_size: int, job, desc: str | None):
    """(pooled, None), or (None, the error) so that rank 0 reports it instead of waiting for a share."""
    texts, layers, lengths = job
    try:
        return encoder.encode(texts, layers, batch_size, runtime=runtime, lengths=lengths, desc=desc or "",
                              progress=desc is not None), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
