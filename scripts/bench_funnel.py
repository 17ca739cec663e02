#!/usr/bin/env python
"""Funnel retrieval (MRL adaptive retrieval) vs full-dim exact search, on SciFact, in one run.

    python scripts/bench_funnel.py --model outputs/runs/<date>/<time>   # an MRL-trained run folder
    python scripts/bench_funnel.py --model default                      # untrained MiniLM, for contrast

The model's SciFact embeddings come from the embedding cache (outputs/cache) when present. Each
search is timed as the median of --repeats runs; FLOPs are multiply-adds per query. Prints every
funnel (prefix dim x shortlist) beside exact full-dim search, and the cheapest funnel whose nDCG@10
is within --tolerance of it.
"""
from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from embedbench.config import EncodeConfig, IndexConfig
from embedbench.data.beir import load_beir, resolve_root
from embedbench.embedding.cache import EmbeddingCache
from embedbench.embedding.embedder import Embedder
from embedbench.embedding.encoder import LayerEncoder, load_model
from embedbench.embedding.views import cut
from embedbench.retrieval.index import EXACT, search
from embedbench.tasks.retrieval import retrieval_metrics

FUNNELS = [(32, 400), (64, 200), (64, 300), (64, 400), (96, 200), (128, 100)]


def timed(docs, queries, spec, repeats):
    runs = [search(docs, queries, 10, spec) for _ in range(repeats)]
    return runs[0], statistics.median(r.search_s for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="run folder, model folder, hub name, or 'default'")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tolerance", type=float, default=0.005)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    ds = load_beir("scifact", resolve_root("scifact", None), "test")
    qids, doc_ids = list(ds.queries), list(ds.corpus)
    texts = [ds.queries[q] for q in qids] + [ds.doc_text(d) for d in doc_ids]
    encoder = LayerEncoder(load_model(args.model, "cpu"))
    last = encoder.n_layers
    embed = Embedder(encoder, [last], EncodeConfig(precision="fp32"), EmbeddingCache(Path("outputs/cache"), 5 * 2**30))
    emb = cut(embed(texts, "scifact")[last], encoder.hidden_size).numpy()
    queries, docs = emb[: len(qids)], emb[len(qids):]

    def ndcg(found):
        run = {q: {doc_ids[j]: float(s) for s, j in zip(row_s, row_i) if j >= 0}
               for q, row_s, row_i in zip(qids, found.scores, found.ids)}
        return retrieval_metrics(ds.qrels, run, ["ndcg_at_10"])["ndcg_at_10"]

    exact, exact_s = timed(docs, queries, EXACT, args.repeats)
    base = ndcg(exact)
    print(f"\nSciFact test ({len(qids)} queries, {len(doc_ids)} docs), model {args.model}, CPU, "
          f"median of {args.repeats} searches")
    print(f"{'search':28s} {'nDCG@10':>8s} {'delta':>8s} {'FLOPs/q':>10s} {'% FLOPs':>8s} {'ms':>8s} {'x time':>7s}")
    print(f"{'exact, full dim':28s} {base:8.5f} {0:8.5f} {exact.flops_per_query:10.0f} {100:8.1f} "
          f"{1000 * exact_s:8.2f} {1:7.2f}")
    within = []
    for dim, shortlist in FUNNELS:
        found, seconds = timed(docs, queries, IndexConfig(name=f"funnel_d{dim}", funnel_dim=dim, shortlist=shortlist),
                               args.repeats)
        score, share = ndcg(found), found.flops_per_query / exact.flops_per_query
        print(f"{f'funnel d{dim} -> {shortlist} -> full':28s} {score:8.5f} {score - base:+8.5f} "
              f"{found.flops_per_query:10.0f} {100 * share:8.1f} {1000 * seconds:8.2f} {seconds / exact_s:7.2f}")
        if base - score <= args.tolerance:
            within.append((share, dim, shortlist, score, seconds / exact_s))
    if within:
        share, dim, shortlist, score, ratio = min(within)
        print(f"cheapest within {args.tolerance}: d{dim} shortlist {shortlist}: {100 * share:.1f} % of the FLOPs, "
              f"{ratio:.2f}x the wall time, nDCG@10 {score:.5f} vs {base:.5f}")
    else:
        print(f"no funnel here is within {args.tolerance} of exact search")


if __name__ == "__main__":
    main()
