#!/usr/bin/env python
"""What dropout on attention probabilities costs a training step on CPU, and what was tried against it.

One attention layer of the headline training's document batch (32 texts x 12 heads x 256 tokens x 32 per
head, the last 56 tokens padding), forward and backward, in fp32 and under bf16 autocast:

* ``sdpa, dropout 0.1`` (the baseline): what BERT-family models do in training. With dropout on, CPU
  scaled-dot-product attention takes its unfused path: the 25M-element probability matrix is materialised,
  a Bernoulli mask is drawn for it, and softmax, mask and their backward each pass over it.
* ``embedbench (trainer.fast_dropout)``: what the train job runs on CPU, ``drawn_dropout_attention``: the same
  math in the inputs' dtype, the mask cut from 32-bit halves of 64-bit random words drawn on several cores,
  the 1 / (1 - p) scaling applied to the values and the score scaling to the queries.
* ``chunks of 4 texts``: the baseline run on 4 texts at a time, so each pass over the probabilities stays
  in cache.
* ``torch.compile``: the eager math compiled by Inductor (its compile time printed apart).
* ``sdpa, no dropout``: ``trainer.attention_dropout=0``, the fused kernel (the lower bound).

Then the mask alone for the same layer, drawn three ways: torch's Bernoulli sampler (what dropout runs),
the same comparison as embedbench's on words from torch's CPU generator in the same four pieces on as many
threads, and embedbench's ``drop_mask`` (words from numpy's PCG64).

    python scripts/bench_attention_dropout.py
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

from embedbench.allocator import keep_freed_memory
from embedbench.embedding.dropout import PIECES, drawn_dropout_attention, drop_mask

BATCH, HEADS, TOKENS, HEAD_DIM, PADDED, P = 32, 12, 256, 32, 56, 0.1


def eager(q, k, v, mask):
    scores = (torch.matmul(q, k.transpose(2, 3)) * HEAD_DIM ** -0.5).masked_fill(~mask, torch.finfo(q.dtype).min)
    return torch.matmul(F.dropout(F.softmax(scores, -1), P), v)


class Training(torch.nn.Module):
    """What the attention function is handed as the module: one that trains, not causal."""
    is_causal = False


def seconds(step, repeats: int) -> float:
    """Mean seconds of ``step()`` over ``repeats`` calls after one to warm up."""
    step()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def torch_words_mask(shape: torch.Size, p: float, pool: ThreadPoolExecutor) -> torch.Tensor:
    """``drop_mask``'s comparison on 64-bit words from torch's CPU generator, drawn in the same pieces."""
    words = torch.empty((shape.numel() + 1) // 2, dtype=torch.int64)
    seeds = torch.randint(2**62, (PIECES,)).tolist()
    list(pool.map(lambda piece, seed: piece.random_(-2**63, 2**63 - 1, generator=torch.Generator().manual_seed(
        seed)), words.chunk(PIECES), seeds))
    return words.view(torch.int32)[:shape.numel()].view(shape) < round(p * 2**32) - 2**31


def main() -> None:
    keep_freed_memory()  # as the train job does: the whole batch's probabilities are not re-faulted each time
    torch.manual_seed(0)
    q, k, v = (torch.randn(BATCH, HEADS, TOKENS, HEAD_DIM, requires_grad=True) for _ in range(3))
    mask = torch.ones(BATCH, 1, TOKENS, TOKENS, dtype=torch.bool)  # as transformers hands it: True where a query
    mask[..., TOKENS - PADDED:] = False  # may see a key
    inputs = (q, k, v, mask)
    compiled = torch.compile(eager, dynamic=False)
    start = time.perf_counter()
    compiled(*inputs).sum().backward()
    compile_seconds = time.perf_counter() - start
    ways = {
        "sdpa, dropout 0.1 (baseline)": lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, m, dropout_p=P),
        "embedbench (trainer.fast_dropout)": lambda q, k, v, m: drawn_dropout_attention(
            Training(), q, k, v, m, dropout=P, scaling=HEAD_DIM ** -0.5)[0],
        "chunks of 4 texts": lambda q, k, v, m: torch.cat([F.scaled_dot_product_attention(
            q[i:i + 4], k[i:i + 4], v[i:i + 4], m[i:i + 4], dropout_p=P) for i in range(0, BATCH, 4)]),
        f"torch.compile (compiled in {compile_seconds:.0f} s)": compiled,
        "sdpa, no dropout": lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, m),
    }
    print(f"one attention layer, forward + backward; {BATCH} x {HEADS} heads x {TOKENS} tokens; "
          f"{torch.get_num_threads()} threads")
    print(f"{'attention':<36}{'fp32 s':>9}{'x base':>8}{'bf16 s':>9}{'x base':>8}")
    base = {}
    for name, attention in ways.items():
        row = f"{name:<36}"
        for precision in ("fp32", "bf16"):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                took = seconds(lambda run=attention: run(*inputs).sum().backward(), repeats=4)
            base.setdefault(precision, took)
            row += f"{took:>9.3f}{took / base[precision]:>8.2f}"
        print(row)

    shape = torch.Size((BATCH, HEADS, TOKENS, TOKENS))
    with ThreadPoolExecutor(PIECES) as pool:
        draws = {
            "torch.bernoulli (torch's dropout)": lambda: torch.empty(shape).bernoulli_(P),
            "torch's generator, 4 pieces": lambda: torch_words_mask(shape, P, pool),
            "embedbench drop_mask (PCG64)": lambda: drop_mask(shape, P),
        }
        print(f"\nthe layer's mask, {shape.numel():,} places")
        print(f"{'drawn by':<36}{'ms':>9}{'x base':>8}")
        first = None
        for name, draw in draws.items():
            took = seconds(draw, repeats=5)
            first = first or took
            print(f"{name:<36}{took * 1e3:>9.1f}{took / first:>8.2f}")


if __name__ == "__main__":
    main()
