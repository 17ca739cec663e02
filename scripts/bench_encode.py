#!/usr/bin/env python
"""Encoding speed against this machine's own matmul ceiling, in one run, plus where the time goes.

    python scripts/bench_encode.py                 # 1,000 SciFact docs + all 300 queries (~8 min here)
    python scripts/bench_encode.py --docs 5183     # the whole corpus

1. Measures the GEMM peak (fp32 and bf16) on MiniLM-shaped matrices with the threads torch uses.
2. Encodes the same texts with sentence-transformers' ``encode`` (fp32, bf16 autocast) and with
   embedbench's encoder (fp32, bf16), each timed on its own; prints real (unpadded) tokens/s, the
   share of the ceiling, the minimum cosine to sentence-transformers' fp32 embeddings and nDCG@10
   on the SciFact slice those texts form.
3. Profiles one embedbench fp32 pass over a sample: tokenisation, GEMMs, attention, other ops.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections import defaultdict

import numpy as np
import torch

from embedbench.data.beir import load_beir, resolve_root, subsample
from embedbench.encoder import LayerEncoder, load_model
from embedbench.index import search
from embedbench.tasks.retrieval import retrieval_metrics


def gemm_peak(dtype: torch.dtype, repeats: int = 20) -> float:
    """Best GFLOP/s over MiniLM's GEMM shapes (feed-forward in and out, projections; small and large
    token counts), so the ceiling is not understated by one unlucky shape."""
    best = 0.0
    for tokens, k, n in ((512, 384, 1536), (4096, 384, 1536), (8192, 1536, 384), (8192, 384, 384)):
        a, b = torch.randn(tokens, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        for _ in range(3):
            a @ b
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * tokens * k * n * repeats / (time.perf_counter() - start) / 1e9)
    return best


def flops_per_token(layers: int, hidden: int, length: float) -> float:
    """Q, K, V, O projections and the 4x feed-forward (2 x 12 h^2 per layer) plus attention scores
    and mixing (2 x 2 L h per layer)."""
    return layers * (2 * 12 * hidden * hidden + 4 * length * hidden)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--profile-texts", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    ds = subsample(load_beir("scifact", resolve_root("scifact", None), "test"), None, args.docs)
    qids, doc_ids = list(ds.queries), list(ds.corpus)
    texts = [ds.queries[q] for q in qids] + [ds.doc_text(d) for d in doc_ids]
    model = load_model("default", "cpu")
    encoder = LayerEncoder(model)
    lengths = encoder.token_lengths(texts)
    layers, hidden = encoder.n_layers, encoder.hidden_size
    mean_flops = float(np.mean([flops_per_token(layers, hidden, n) for n in lengths]))
    peaks = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    print(f"{torch.get_num_threads()} threads; GEMM peak fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} "
          f"GFLOP/s; {len(texts)} texts, {lengths.sum():,} tokens (mean {lengths.mean():.0f}), "
          f"{mean_flops / 1e6:.1f} MFLOP/token -> ceiling {peaks['fp32'] * 1e9 / mean_flops:,.0f} tok/s fp32, "
          f"{peaks['bf16'] * 1e9 / mean_flops:,.0f} tok/s bf16")

    def st_encode(precision):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with autocast, torch.inference_mode():
            return torch.as_tensor(model.encode(texts, batch_size=32, convert_to_numpy=True))

    def ours(precision):
        return torch.nn.functional.normalize(encoder.encode(texts, [layers], 32, precision, "embedbench")[layers], dim=-1)

    contenders = [("sentence-transformers encode, fp32", lambda: st_encode("fp32"), "fp32"),
                  ("sentence-transformers encode, bf16 autocast", lambda: st_encode("bf16"), "bf16"),
                  ("embedbench, fp32", lambda: ours("fp32"), "fp32"),
                  ("embedbench, bf16", lambda: ours("bf16"), "bf16")]
    reference = None
    print(f"\n{'encoder':44s} {'s':>7s} {'tok/s':>8s} {'% ceiling':>9s} {'min cos':>8s} {'nDCG@10':>8s}")
    for name, run, precision in contenders:
        start = time.perf_counter()
        emb = run().float()
        seconds = time.perf_counter() - start
        reference = emb if reference is None else reference
        found = search(emb[len(qids):].numpy(), emb[: len(qids)].numpy(), 10)
        run_ = {q: {doc_ids[j]: float(s) for s, j in zip(rs, ri) if j >= 0}
                for q, rs, ri in zip(qids, found.scores, found.ids)}
        ndcg = retrieval_metrics(ds.qrels, run_, ["ndcg_at_10"])["ndcg_at_10"]
        rate = lengths.sum() / seconds
        ceiling = peaks[precision] * 1e9 / mean_flops
        print(f"{name:44s} {seconds:7.1f} {rate:8,.0f} {100 * rate / ceiling:8.1f}% "
              f"{float((emb * reference).sum(-1).min()):8.5f} {ndcg:8.5f}", flush=True)

    profile(encoder, texts[len(qids):][: args.profile_texts], layers)


def profile(encoder: LayerEncoder, texts: list[str], layers: int) -> None:
    """Where one fp32 pass spends its time, from torch's profiler, grouped into a few kinds of work."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    start = time.perf_counter()
    encoder.model.preprocess(texts)
    tokenize_s = time.perf_counter() - start
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        encoder.encode(texts, [layers], 32, "fp32", "profile")
        total_s = time.perf_counter() - start
    groups = {"GEMMs (linear / addmm / mm)": ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul"),
              "attention kernel (sdpa)": ("aten::_scaled_dot_product", "aten::scaled_dot_product"),
              "softmax": ("aten::softmax", "aten::_softmax"),
              "layer norm": ("aten::layer_norm", "aten::native_layer_norm"),
              "GELU": ("aten::gelu",),
              "copies / reshapes / adds": ("aten::copy_", "aten::add", "aten::contiguous", "aten::clone",
                                           "aten::cat", "aten::index", "aten::mul", "aten::div")}
    spent = defaultdict(float)
    for event in prof.key_averages():
        for group, prefixes in groups.items():
            if event.key.startswith(prefixes):
                spent[group] += event.self_cpu_time_total / 1e6
                break
    print(f"\nprofile: embedbench fp32, {len(texts)} docs, {total_s:.2f} s wall")
    print(f"  {'tokenisation (measured apart)':34s} {tokenize_s:6.2f} s {100 * tokenize_s / total_s:5.1f}%")
    for group in groups:
        print(f"  {group:34s} {spent[group]:6.2f} s {100 * spent[group] / total_s:5.1f}%")
    rest = total_s - tokenize_s - sum(spent.values())
    print(f"  {'everything else (Python, pooling)':34s} {rest:6.2f} s {100 * rest / total_s:5.1f}%")


if __name__ == "__main__":
    main()
