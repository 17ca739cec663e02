#!/usr/bin/env python
"""Peak memory of one InfoNCE training step at a large batch: uncached vs GradCache, in one run.

    python scripts/bench_gradcache.py                    # batch 512, mini-batch 32, MRL views
    python scripts/bench_gradcache.py --batch 256 --mini-batch 64

Each mode runs in a fresh process (peak RSS is per process): MiniLM, the first --batch SciFact
train pairs (query, cited abstract) at --max-length tokens, forward + backward of the MRL view
objective. Prints the peak resident memory and step time of both, their ratio, and the largest
difference between their gradients (GradCache is exact: same gradients, bounded memory).
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

MRL_DIMS = [384, 256, 128, 64, 32]


def step(batch: int, mini_batch: int, max_length: int, grads_out: str) -> dict:
    """One forward + backward in this process; the gradients saved for the comparison."""
    import torch

    from embedbench.config import DataConfig, InfoNCEConfig, ObjectiveConfig, ViewsConfig
    from embedbench.data.pairs import qrels_pairs
    from embedbench.embedding.encoder import LayerEncoder, load_model
    from embedbench.embedding.views import build_views
    from embedbench.losses import build_objective

    pairs = qrels_pairs(DataConfig(name="scifact"), batch)
    model = load_model("default", "cpu", max_length)
    model.eval()  # no dropout: the two modes must compute the same function to compare gradients
    encoder = LayerEncoder(model)
    views = build_views(ViewsConfig(dims=MRL_DIMS, weights=[1.0] * len(MRL_DIMS)), encoder.n_layers,
                        encoder.hidden_size)
    loss = InfoNCEConfig(name="cached_infonce" if mini_batch else "infonce", mini_batch_size=mini_batch or None)
    objective = build_objective(loss, encoder, views, ObjectiveConfig())
    features = [model.preprocess(pairs["anchor"]), model.preprocess(pairs["positive"])]
    start = time.perf_counter()
    loss = objective(features)
    loss.backward()
    seconds = time.perf_counter() - start
    torch.save({n: p.grad for n, p in model.named_parameters() if p.grad is not None}, grads_out)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {"loss": loss.item(), "seconds": seconds, "peak_gb": peak_gb, "texts": len(pairs) * 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--mini-batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args._child:
        mini_batch, grads_out = int(args._child[0]), args._child[1]
        print(json.dumps(step(args.batch, mini_batch, args.max_length, grads_out)))
        return

    import torch

    results, grads = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, mini_batch in (("uncached", 0), (f"GradCache mb={args.mini_batch}", args.mini_batch)):
            out = str(Path(tmp) / f"{mini_batch}.pt")
            proc = subprocess.run([sys.executable, __file__, "--batch", str(args.batch), "--max-length",
                                   str(args.max_length), "--_child", str(mini_batch), out],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                sys.exit(f"{name} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
            results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
            grads[name] = torch.load(out)
    base, cached = results.values()
    names = list(results)
    diff = max((grads[names[0]][k] - grads[names[1]][k]).abs().max().item() for k in grads[names[0]])
    scale = max(g.abs().max().item() for g in grads[names[0]].values())
    print(f"batch {args.batch} pairs ({base['texts']} texts, {args.max_length} tokens max), MRL views, CPU fp32")
    for name, r in results.items():
        print(f"  {name:<20} peak RSS {r['peak_gb']:6.2f} GB   step {r['seconds']:6.1f} s   loss {r['loss']:.6f}")
    print(f"  GradCache / uncached: memory {cached['peak_gb'] / base['peak_gb']:.2f}x, "
          f"time {cached['seconds'] / base['seconds']:.2f}x; max |grad diff| {diff:.2e} (max |grad| {scale:.2e})")


if __name__ == "__main__":
    main()
