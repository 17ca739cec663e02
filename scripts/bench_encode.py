#!/usr/bin/env python
"""Encoding speed against this machine's own matmul ceiling, in one run, plus where the fast mode's time goes.

    python scripts/bench_encode.py                 # 1,000 SciFact docs + 300 queries, 2,758 STS-B sentences
    python scripts/bench_encode.py --docs 5183     # the whole SciFact corpus

1. Measures the GEMM peak (fp32 and bf16) on MiniLM-shaped matrices with the threads torch uses.
2. Encodes the same texts with sentence-transformers' ``encode`` (fp32, bf16 autocast) and with
   embedbench's encoder in each mode (torch fp32 = the reference, torch bf16 weights, OpenVINO fp32,
   OpenVINO bf16 = ``encode=fast`` on CPU, OpenVINO int8 = ``encode=int8``) at the CPU's default batch (and at
   32, the old default),
   each timed on its own, runtime build (copy or conversion) included; prints real (unpadded) tokens/s,
   the share of the ceiling, the minimum cosine to sentence-transformers' fp32 embeddings and nDCG@10
   on the SciFact slice those texts form.
   A second, short-text set (STS-B test sentences) shows the same for queries-like inputs.
3. Compares OpenVINO's default, a batch per stream in flight (each stream on cores of its own), with one
   stream running every core on each batch: the SciFact texts encoded by each in turn, alternated for
   ``--rounds`` rounds (the gain is smaller than this machine's noise between single runs).
4. int8 by OpenVINO's dynamic-quantisation group (input channels per activation scale) against bf16: the
   SciFact texts encoded by each in turn, alternated over ``--rounds`` rounds; time, minimum cosine to fp32
   and nDCG@10 of each group.
5. Profiles the fast mode over a sample: OpenVINO's own per-node timings grouped by kind of work,
   tokenisation, pooling, and what remains (Python, copies).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from embedbench.allocator import keep_freed_memory
from embedbench.data.beir import load_beir, resolve_root, subsample
from embedbench.data.tables import read_sts_benchmark
from embedbench.embedding import runtimes
from embedbench.embedding.encoder import LayerEncoder, load_model, resolve_batch_size
from embedbench.retrieval.index import search
from embedbench.tasks.retrieval import retrieval_metrics

DEFAULT_INT8_GROUP = runtimes.INT8_GROUP


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
    parser.add_argument("--profile-texts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the streams comparison")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    keep_freed_memory()  # the heap settings the eval job runs with: batches' activations are not re-faulted

    ds = subsample(load_beir("scifact", resolve_root("scifact", None), "test"), None, args.docs)
    qids, doc_ids = list(ds.queries), list(ds.corpus)
    sts = read_sts_benchmark(Path(os.environ.get("EMBEDBENCH_DATA", "../shared/data")) / "sts/stsbenchmark"
                             / "sts-test.csv")
    model = load_model("default", "cpu")
    encoder = LayerEncoder(model)
    layers, hidden = encoder.n_layers, encoder.hidden_size
    peaks = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    print(f"{torch.get_num_threads()} threads; GEMM peak fp32 {peaks['fp32']:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.0f} GFLOP/s")

    def st_encode(texts, precision):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        with autocast, torch.inference_mode():
            return torch.as_tensor(model.encode(texts, batch_size=32, convert_to_numpy=True))

    def ours(texts, precision, backend, batch_size=resolve_batch_size("auto", "cpu")):
        pooled = encoder.encode(texts, [layers], batch_size, precision, "embedbench", backend)[layers]
        return torch.nn.functional.normalize(pooled, dim=-1)

    # embedbench at its CPU default batch (16 full-length texts, a 4k-token budget), and at 32 (8k) to
    # show what that default buys
    contenders = [("sentence-transformers encode, fp32", lambda t: st_encode(t, "fp32"), "fp32"),
                  ("sentence-transformers encode, bf16 autocast", lambda t: st_encode(t, "bf16"), "bf16"),
                  ("embedbench torch fp32 (reference)", lambda t: ours(t, "fp32", "torch"), "fp32"),
                  ("  same, batch 32", lambda t: ours(t, "fp32", "torch", 32), "fp32"),
                  ("embedbench torch bf16 weights", lambda t: ours(t, "bf16", "torch"), "bf16"),
                  ("embedbench OpenVINO fp32", lambda t: ours(t, "fp32", "openvino"), "fp32"),
                  ("embedbench OpenVINO bf16 (encode=fast)", lambda t: ours(t, "bf16", "openvino"), "bf16"),
                  ("  same, batch 32", lambda t: ours(t, "bf16", "openvino", 32), "bf16"),
                  ("embedbench OpenVINO int8 (encode=int8)", lambda t: ours(t, "int8", "openvino"), "bf16")]
    text_sets = [(f"SciFact: {len(qids)} queries + {len(doc_ids)} docs",
                  [ds.queries[q] for q in qids] + [ds.doc_text(d) for d in doc_ids], True),
                 (f"STS-B test: {2 * len(sts.sentences1)} sentences", sts.sentences1 + sts.sentences2, False)]
    for title, texts, retrieval in text_sets:
        lengths = encoder.token_lengths(texts)
        mean_flops = float(np.mean([flops_per_token(layers, hidden, n) for n in lengths]))
        print(f"\n{title}: {lengths.sum():,} tokens (mean {lengths.mean():.0f}), {mean_flops / 1e6:.1f} MFLOP/token "
              f"-> ceiling {peaks['fp32'] * 1e9 / mean_flops:,.0f} tok/s fp32, "
              f"{peaks['bf16'] * 1e9 / mean_flops:,.0f} tok/s bf16")
        print(f"{'encoder':44s} {'s':>7s} {'tok/s':>8s} {'x ST fp32':>9s} {'% ceiling':>9s} {'min cos':>8s} "
              f"{'nDCG@10':>8s}")
        reference = base_seconds = None
        for name, run, precision in contenders:
            start = time.perf_counter()
            emb = run(texts).float()
            seconds = time.perf_counter() - start
            if reference is None:
                reference, base_seconds = emb, seconds
            ndcg = f"{slice_ndcg(emb, ds):.5f}" if retrieval else ""
            rate = lengths.sum() / seconds
            share = 100 * rate * mean_flops / (peaks[precision] * 1e9)
            print(f"{name:44s} {seconds:7.1f} {rate:8,.0f} {base_seconds / seconds:8.2f}x {share:8.1f}% "
                  f"{float((emb * reference).sum(-1).min()):8.5f} {ndcg:>8s}", flush=True)
        if retrieval:
            scifact_reference = reference

    compare_streams(encoder, text_sets[0][1], layers, args.rounds)
    compare_int8_groups(encoder, text_sets[0][1], layers, scifact_reference, ds, args.rounds)
    profile(encoder, [ds.doc_text(d) for d in doc_ids][: args.profile_texts], layers)


def slice_ndcg(emb: torch.Tensor, ds) -> float:
    """nDCG@10 of ``emb`` (the slice's queries, then its documents, normalised) by exact search."""
    qids, doc_ids = list(ds.queries), list(ds.corpus)
    found = search(emb[len(qids):].numpy(), emb[: len(qids)].numpy(), 10)
    ranked = {q: {doc_ids[j]: float(s) for s, j in zip(rs, ri) if j >= 0}
              for q, rs, ri in zip(qids, found.scores, found.ids)}
    return retrieval_metrics(ds.qrels, ranked, ["ndcg_at_10"])["ndcg_at_10"]


def in_turn(encoder: LayerEncoder, texts: list[str], layer: int, built: dict, rounds: int) -> tuple[dict, dict]:
    """Seconds per round of each runtime in ``built`` over ``texts``, and its embeddings: each built beforehand
    and used in turn, the order reversed every other round, so drifts of the machine's speed fall on all."""
    seconds, embeddings = dict.fromkeys(built, 0.0), {}
    for round_ in range(rounds):
        for name in (list(built) if round_ % 2 == 0 else list(built)[::-1]):
            start = time.perf_counter()
            out = encoder.encode(texts, [layer], desc=name, runtime=built[name], progress=False)[layer]
            seconds[name] += time.perf_counter() - start
            embeddings[name] = torch.nn.functional.normalize(out.float(), dim=-1)
    return {name: total / rounds for name, total in seconds.items()}, embeddings


def compare_int8_groups(encoder: LayerEncoder, texts: list[str], layer: int, reference: torch.Tensor, ds,
                        rounds: int, groups: tuple[int, ...] = (32, 64, 128, 256, 384)) -> None:
    """encode=int8's runtime at each dynamic-quantisation group against encode=fast's, taking turns."""
    built = {"bf16 (encode=fast)": encoder.runtime("bf16", "openvino")}
    for group in groups:
        runtimes.INT8_GROUP = group  # read when the runtime compiles
        built[f"int8, group {group}" + (" (encode=int8)" if group == DEFAULT_INT8_GROUP else "")] = \
            encoder.runtime("int8", "openvino")
    runtimes.INT8_GROUP = DEFAULT_INT8_GROUP
    seconds, embeddings = in_turn(encoder, texts, layer, built, rounds)
    base = seconds["bf16 (encode=fast)"]
    print(f"\nint8 by dynamic-quantisation group over the SciFact texts, {rounds} rounds each, runtimes built "
          f"beforehand\n{'runtime':32s} {'s/round':>8s} {'x bf16':>7s} {'min cos':>8s} {'nDCG@10':>8s}")
    for name, per_round in seconds.items():
        cosine = float((embeddings[name] * reference).sum(-1).min())
        print(f"{name:32s} {per_round:8.2f} {per_round / base:7.3f} {cosine:8.5f} "
              f"{slice_ndcg(embeddings[name], ds):8.5f}")


def compare_streams(encoder: LayerEncoder, texts: list[str], layer: int, rounds: int) -> None:
    """encode=fast's runtime with a batch per stream in flight against one stream, taking turns."""
    built = {"a batch per stream (default)": encoder.runtime("bf16", "openvino"),
             "one stream, every core per batch": encoder.runtime("bf16", "openvino", streams=False)}
    seconds, _ = in_turn(encoder, texts, layer, built, rounds)
    default, one = seconds.values()
    print(f"\nOpenVINO bf16 over the SciFact texts, {rounds} rounds each, runtimes built beforehand: "
          f"{len(built['a batch per stream (default)'].requests)} streams {default:.2f} s, "
          f"one stream {one:.2f} s per round: {default / one:.3f}x its time")


def profile(encoder: LayerEncoder, texts: list[str], layer: int) -> None:
    """Where the fast mode's time goes: the inference calls' wall time split by OpenVINO's per-node timings
    (grouped into a few kinds of work), tokenisation timed apart, and the rest of the encode loop. One
    stream, so that each call's wall time is its batch's alone."""
    runtime = encoder.runtime("bf16", "openvino", profile=True, streams=False)
    nodes, inference = defaultdict(float), [0.0]

    def timed(features):
        start = time.perf_counter()
        hidden = runtime(features)
        inference[0] += time.perf_counter() - start
        for node in runtime.request.profiling_info:
            nodes[kind_of_work(node.node_name, node.node_type)] += node.real_time.total_seconds()
        return hidden

    start = time.perf_counter()
    encoder.model.preprocess(texts)
    tokenise = time.perf_counter() - start
    start = time.perf_counter()
    encoder.encode(texts, [layer], desc="profile", runtime=timed)
    total = time.perf_counter() - start
    print(f"\nprofile: embedbench encode=fast (OpenVINO bf16), {len(texts)} docs, {total:.2f} s wall, "
          f"{inference[0]:.2f} s of it in OpenVINO")
    node_total = sum(nodes.values())
    shares = {kind: inference[0] * seconds / node_total for kind, seconds in nodes.items()}
    shares["tokenisation (timed apart)"] = tokenise
    shares["pooling, batching, Python, copies (the rest)"] = total - inference[0] - tokenise
    for kind, seconds in sorted(shares.items(), key=lambda item: -item[1]):
        print(f"  {kind:44s} {seconds:6.2f} s {100 * seconds / total:5.1f}%")


def kind_of_work(name: str, node_type: str) -> str:
    """OpenVINO fuses ops into nodes (bias and GELU into the GEMM, the attention into one subgraph):
    name the work by the PyTorch op the node came from where its type alone does not say."""
    if "scaled_dot_product_attention" in name:
        return "attention (one fused node per layer)"
    if "layer_norm" in name or node_type == "MVN":
        return "layer norm"
    if node_type in ("FullyConnected", "MatMul"):
        return "GEMMs (bias and GELU fused in)"
    if node_type in ("Transpose", "Reorder", "Reshape", "Convert", "Gather", "Concat", "Broadcast", "ShapeOf",
                     "Slice", "StridedSlice"):
        return "transposes / layout reorders / gathers"
    if node_type in ("Add", "Multiply", "Subtract", "Eltwise"):
        return "element-wise (residual adds, scaling)"
    return "other nodes"


if __name__ == "__main__":
    main()
