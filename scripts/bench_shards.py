#!/usr/bin/env python
"""Retrieval by shards (``eval.shard_docs``) over a collection of embedded vectors larger than this machine's
memory: the retriever the eval uses (embedbench.retrieval.dense.DenseRetriever) over a synthetic source
of 384-dim vectors (seeded per block of rows, so a shard's rows are the same whichever way they are asked
for), two views (full and d64), exact search.

1. On a collection small enough for both ways, each in a fresh process: the whole collection at once
   against shards, the same top-k ids, and each way's peak resident memory.
2. The large collection, by shards only (at once it cannot fit): peak memory against the collection's size
   and the machine's RAM.

    python scripts/bench_shards.py                     # 20M x 384 fp32 = 30.7 GB, shards of 500k
    python scripts/bench_shards.py --docs 2000000      # a quicker run
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from embedbench.embedding.views import View, ViewSet
from embedbench.retrieval.dense import DenseRetriever

DIM, BLOCK = 384, 65536
VIEWS = ViewSet((View(1, DIM), View(1, 64)), n_layers=1, hidden_size=DIM)


def vectors(texts: list[str], desc: str = "") -> dict[int, torch.Tensor]:
    """Rows for texts named ``d<row>`` (documents) or ``q<row>`` (queries), from seeded blocks of rows."""
    kinds = np.array([ord(text[0]) for text in texts])
    rows = np.array([int(text[1:]) for text in texts])
    out = np.empty((len(rows), DIM), dtype=np.float32)
    for kind, block in {(int(k), int(b)) for k, b in zip(kinds, rows // BLOCK)}:
        chosen = (kinds == kind) & (rows // BLOCK == block)
        table = np.random.default_rng([kind, block]).standard_normal((BLOCK, DIM), dtype=np.float32)
        out[chosen] = table[rows[chosen] % BLOCK]
    return {1: torch.from_numpy(out)}


def child(mode: str, docs: int, shard: int, queries: int, out: Path) -> None:
    started = time.perf_counter()
    retriever = DenseRetriever(vectors, VIEWS, shard_docs=shard if mode == "shards" else None)
    found = retriever.retrieve([f"q{i}" for i in range(queries)], [f"d{i}" for i in range(docs)], 10, mode)
    np.save(out, np.stack([found[""].ids, found["/d64"].ids]))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print(json.dumps({"peak_gb": peak_gb, "seconds": time.perf_counter() - started}))


def measure(mode: str, docs: int, shard: int, queries: int, folder: Path) -> tuple[dict, np.ndarray]:
    out = folder / f"{mode}-{docs}.npy"
    proc = subprocess.run([sys.executable, __file__, "--child", mode, "--docs", str(docs), "--shard", str(shard),
                           "--queries", str(queries), "--out", str(out)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{mode} on {docs:,} documents failed: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20_000_000)
    parser.add_argument("--shard", type=int, default=500_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--check-docs", type=int, default=2_000_000)
    parser.add_argument("--child", choices=["whole", "shards"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.docs, args.shard, args.queries, args.out)
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    gb = lambda n: n * DIM * 4 / 1e9  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        whole, whole_ids = measure("whole", args.check_docs, args.shard, args.queries, folder)
        shards, shard_ids = measure("shards", args.check_docs, args.shard, args.queries, folder)
        same = "yes" if np.array_equal(whole_ids, shard_ids) else "NO"
        print(f"machine RAM {ram_gb:.1f} GB; shards of {args.shard:,} documents ({gb(args.shard):.2f} GB)")
        print("| collection | way | peak memory | seconds | top-10 ids equal to the whole collection's |")
        print("|---|---|---|---|---|")
        small = f"{args.check_docs:,} x {DIM} ({gb(args.check_docs):.1f} GB)"
        print(f"| {small} | at once | {whole['peak_gb']:.2f} GB | {whole['seconds']:.1f} | |")
        print(f"| {small} | by shards | {shards['peak_gb']:.2f} GB | {shards['seconds']:.1f} | {same} |")
        large, _ = measure("shards", args.docs, args.shard, args.queries, folder)
        print(f"| {args.docs:,} x {DIM} ({gb(args.docs):.1f} GB) | by shards | {large['peak_gb']:.2f} GB | "
              f"{large['seconds']:.1f} | (too large to search at once) |")
        print(f"peak memory, by shards / at once: {shards['peak_gb'] / whole['peak_gb']:.2f}x; the large collection "
              f"is {gb(args.docs) / ram_gb:.2f}x the RAM, its peak {large['peak_gb'] / ram_gb:.2f}x")

if __name__ == "__main__":
    main()
