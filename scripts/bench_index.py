#!/usr/bin/env python
"""The index zoo at scale, on a SYNTHETIC collection (speed and recall only, never quality).

    python scripts/bench_index.py                       # 1M x 384 docs, 1,000 queries (minutes)
    python scripts/bench_index.py --docs 100000         # quicker
    python scripts/bench_index.py --hnsw                # also HNSW32 (its build on 1M vectors is slow)
    python scripts/bench_index.py --ordered             # coordinates in decreasing variance, as MRL's

The collection is generated, not real text: a mixture of --clusters Gaussian clusters in a
--latent-dim space (random centres, per-coordinate noise --spread), lifted to --dim by a fixed
random map with a little noise, normalised; queries are fresh draws from the same mixture. Embedding
collections are clustered like this, so IVF and HNSW behave roughly as on real data, but no quality
number from it means anything. The lift spreads the signal over all dims, so no prefix ranks well;
``--ordered`` rotates the coordinates into decreasing variance (the eigenvectors of the collection's
second moment), the order Matryoshka training gives a model's dims. A rotation changes no inner product:
exact search and every full-width float index see the same collection, while a prefix funnel gets an
informative prefix (and binary codes, which weigh every dim alike, get mostly noise). Every index is
built and searched through embedbench's own search (the code `index=zoo` runs); exact flat search is the
baseline for recall@10 and for speed (QPS ratio), all in this one run.
"""
from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from embedbench.config import IndexConfig
from embedbench.retrieval.dense import overlap
from embedbench.retrieval.index import EXACT, search


def mixture(n: int, centres: np.ndarray, spread: float, lift: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """n unit vectors: a random latent centre each plus Gaussian noise, lifted to the full dim by a
    fixed random map plus a little full-dim noise; built in blocks to bound peak memory."""
    out = np.empty((n, lift.shape[1]), dtype=np.float32)
    for start in range(0, n, 100_000):
        rows = min(100_000, n - start)
        latent = centres[rng.integers(0, len(centres), rows)] + spread * rng.standard_normal(
            (rows, centres.shape[1]), dtype=np.float32)
        block = latent @ lift + 0.1 * rng.standard_normal((rows, lift.shape[1]), dtype=np.float32)
        out[start:start + rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def by_variance(docs: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both rotated onto the eigenvectors of the docs' second moment, largest first (no centring: a pure
    rotation keeps every inner product and norm)."""
    sample = docs[:200_000].astype(np.float64)
    _, vectors = np.linalg.eigh(sample.T @ sample)
    rotation = np.ascontiguousarray(vectors[:, ::-1], dtype=np.float32)
    for start in range(0, len(docs), 100_000):  # in place, in blocks: no second copy of the collection
        docs[start:start + 100_000] = docs[start:start + 100_000] @ rotation
    return docs, queries @ rotation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--latent", type=int, default=48, help="intrinsic dim of the mixture (real embeddings: low)")
    parser.add_argument("--hnsw", action="store_true", help="also build HNSW32 (slow to build on few cores)")
    parser.add_argument("--ordered", action="store_true", help="rotate the dims into decreasing variance")
    args = parser.parse_args()

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((args.clusters, args.latent), dtype=np.float32)
    lift = rng.standard_normal((args.latent, args.dim), dtype=np.float32) / np.sqrt(args.latent)
    docs = mixture(args.docs, centres, args.spread, lift, rng)
    queries = mixture(args.queries, centres, args.spread, lift, rng)  # same mixture, fresh draws
    if args.ordered:
        docs, queries = by_variance(docs, queries)
    print(f"SYNTHETIC collection: {args.docs:,} x {args.dim} (mixture of {args.clusters} clusters in "
          f"{args.latent} latent dims, spread {args.spread}, "
          f"{'decreasing-variance' if args.ordered else 'random'} coordinate order), "
          f"{args.queries:,} queries; generated in {time.perf_counter() - start:.0f} s; "
          f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")

    # IVF lists by the zoo's rule (~4 sqrt(n): 4,000 at 1M), centroids trained on 160k docs (40 per list)
    specs = [IndexConfig(name=f"ivf nprobe={probes}", factory="IVF{nlist},Flat", params=f"nprobe={probes}",
                       train_sample=160_000) for probes in (8, 16, 32)]
    specs += [IndexConfig(name="sq8 (int8)", factory="SQ8"),
              IndexConfig(name="binary", factory="BFlat", binary=True),
              IndexConfig(name="binary + float rescore x4", factory="BFlat", binary=True, rescore=4,
                          rescore_float=True),
              IndexConfig(name="funnel d64 -> 300", funnel_dim=64, shortlist=300)]
    # the adaptive funnel at scale: IVF on the d64 prefix (same lists and probes), x5 shortlist at 384
    specs += [IndexConfig(name=f"funnel d64 ivf nprobe={probes} -> 50", funnel_dim=64, shortlist=50,
                          factory="IVF{nlist},Flat", params=f"nprobe={probes}", train_sample=160_000)
              for probes in (8, 16, 32)]
    if args.hnsw:
        specs.insert(3, IndexConfig(name="hnsw32 efSearch=128", factory="HNSW32,Flat", params="efSearch=128"))

    exact = search(docs, queries, 10, EXACT)
    exact_qps = args.queries / exact.search_s
    print(f"\n{'index':28s} {'recall@10':>9s} {'QPS':>9s} {'x flat QPS':>10s} {'build s':>8s} {'bytes/vec':>9s}")
    print(f"{'flat (exact)':28s} {1.0:9.3f} {exact_qps:9.0f} {1.0:10.1f} {exact.build_s:8.1f} "
          f"{exact.bytes_per_vec:9.0f}")
    for spec in specs:
        found = search(docs, queries, 10, spec)
        qps = args.queries / found.search_s
        print(f"{spec.name:28s} {overlap(found.ids, exact.ids):9.3f} {qps:9.0f} {qps / exact_qps:10.1f} "
              f"{found.build_s:8.1f} {found.bytes_per_vec:9.0f}", flush=True)


if __name__ == "__main__":
    main()
