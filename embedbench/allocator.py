"""Keep freed activations in the process heap instead of handing them back to the kernel.

Each encoder batch allocates and frees tens of MB of activations; glibc serves such blocks
with mmap and unmaps them on free, so every batch pays page faults and page zeroing in the
kernel. Raising the thresholds lets the heap reuse them; outputs are unchanged. Same effect
as MALLOC_MMAP_THRESHOLD_ and friends, set from inside the process.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """True where glibc took the settings; a no-op elsewhere (macOS, musl)."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    return all(mallopt(option, value) == 1 for option, value in (
        (M_MMAP_THRESHOLD, 32 << 20),  # glibc's ceiling; larger blocks still come from mmap
        (M_TRIM_THRESHOLD, 1 << 34),
        (M_TOP_PAD, 1 << 30),
    ))
