"""How much memory this process can still take: the machine's available memory, within the limit of its
memory cgroup (a Slurm job's, a container's), which is where the kernel kills a process first, and shared
with the other processes torchrun started beside it."""
from __future__ import annotations

import os
from pathlib import Path

# per cgroup version: the limit, the usage, and the usage's reclaimable part (file pages not recently used)
_V2 = ("", "memory.max", "memory.current", "inactive_file")
_V1 = ("memory", "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a page-rounded 2^63


def available_bytes() -> int:
    """This process's share of the memory left: torchrun's processes on one machine each load and convert
    their own copy of the model, all at the same time, so each sees the whole before any has taken its part."""
    import psutil

    free = psutil.virtual_memory().available
    room = cgroup_room()
    return (free if room is None else min(free, room)) // processes_here()


def processes_here() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def available_text(free: int) -> str:
    """``free`` (from :func:`available_bytes`) as an error message gives it."""
    shared = processes_here()
    return f"{free / 2**30:.1f} GiB of memory is available" + \
        (f" to each of the {shared} processes on this machine" if shared > 1 else "")


def cgroup_room(proc: Path = Path("/proc/self/cgroup"), mount: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The least room left under a limit of this process's memory cgroup or of one above it; None where no
    cgroup limits memory (or the system has none)."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        layout = _V2 if controllers == "" else _V1 if "memory" in controllers.split(",") else None
        if layout is None:
            continue
        base = mount / layout[0]
        own = base / path.lstrip("/")
        # the own cgroup and those above it; inside a container the mount's root is the own cgroup
        folders = [own, *own.parents[:len(own.relative_to(base).parts)]] if own.is_dir() else [base]
        rooms = [_room(folder, *layout[1:]) for folder in folders if (folder / layout[1]).is_file()]
        if rooms:
            limited = [room for room in rooms if room is not None]
            return min(limited) if limited else None
    return None


def _room(folder: Path, limit_name: str, usage_name: str, reclaimable: str) -> int | None:
    limit = (folder / limit_name).read_text().strip()
    if limit == "max" or int(limit) >= UNLIMITED:
        return None
    stat = dict(line.split() for line in (folder / "memory.stat").read_text().splitlines())
    used = int((folder / usage_name).read_text()) - int(stat.get(reclaimable, 0))
    return max(int(limit) - used, 0)
