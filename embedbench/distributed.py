"""Running under ``torchrun``: who this process is, and what only rank 0 does.

Every rank trains (the Hugging Face trainer shards the data and wraps the model in DDP); only
rank 0 opens the MLflow run, saves the model and scores it, so metrics and the model are
written once. The run folder is chosen by rank 0 and broadcast, because Hydra's folder name
is a timestamp that two processes would not agree on. Torch is imported only once a process
group is needed, so the CLI can ask :func:`world_size` for free.
"""
from __future__ import annotations

import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def init() -> None:
    """Join the process group torchrun set up (gloo on CPU, nccl on CUDA); the trainer reuses it."""
    import torch
    import torch.distributed as dist

    # imported before the group exists: its functions (sentence-transformers' gather across devices) take
    # torch.distributed.group.WORLD as a default argument, and one imported later would hold the group alive
    # past destroy_process_group, its gloo threads then torn down with the interpreter, which can abort it
    import torch.distributed.nn  # noqa: F401

    if world_size() > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def leave() -> None:
    """Leave the process group before the interpreter exits: a gloo group left to interpreter shutdown can
    abort the process (``terminate called without an active exception``) after its work is done."""
    if world_size() == 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def from_rank0(make):
    """``make()`` evaluated on rank 0, the same value on every rank."""
    import torch.distributed as dist

    value = [make() if is_main() else None]
    dist.broadcast_object_list(value, src=0)
    return value[0]
