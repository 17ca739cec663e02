#!/usr/bin/env python
"""Where a step of the headline training goes: torch.profiler over MRL MiniLM steps in fp32, in bf16 autocast
(the train job's default on CPUs with native bf16) and with the weights themselves in bf16.

    python scripts/profile_train.py --steps 4 --batch 32 [--torch-dropout]

The step is the trainer's: dropout drawn as the train job draws it on CPU (``trainer.fast_dropout``; torch's
own with --torch-dropout), forward of both columns, the MRL InfoNCE objective (dims 384..32), backward,
AdamW update, on SciFact train pairs with the headline run's settings. Per precision: the seconds of
forward, backward and optimizer over --steps unprofiled steps (after one warm-up), the share of padding
among the tokens a batch computes, then one more step under torch.profiler: operators' self time by
kind (GEMM, attention, copies and casts, the rest) with the largest operators named, copy_ split by what
it copies (weights, attention matrices, the rest), and the GEMMs' achieved rate beside the GEMM peak
measured in the same run (the ceiling `scripts/bench_train.py` reports against). The precisions take turns
step by step, so a change in the machine's speed during the run falls on all of them alike. First, the
most that batching texts of like length could save: the tokens and attention's token pairs of an epoch
batched in the order of one column's length, against a shuffled epoch's.
"""
from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict
from contextlib import ExitStack, nullcontext
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.setdefault("EMBEDBENCH_DATA", str(REPO.parent / "shared" / "data")))

KINDS = {  # operator name fragments -> kind; the first that matches wins
    "GEMM": ("addmm", "aten::mm", "bmm", "mkldnn_linear", "onednn", "_mkl_linear"),
    "attention": ("scaled_dot_product", "softmax", "_efficient_attention", "flash_attention"),
    "copies and casts": ("_to_copy", "aten::copy_", "aten::to"),
    "optimizer": ("_foreach", "adamw", "lerp", "addcdiv", "addcmul"),
    "norm + activation": ("layer_norm", "gelu", "tanh", "native_dropout", "dropout"),
}


def kind(name: str) -> str:
    lowered = name.lower()
    return next((k for k, fragments in KINDS.items() if any(f in lowered for f in fragments)), "other")


def main() -> None:
    import torch
    from bench_encode import gemm_peak
    from torch.profiler import ProfilerActivity, profile

    from embedbench.allocator import keep_freed_memory
    from embedbench.cli import compose_config
    from embedbench.composition import load
    from embedbench.data.pairs import training_pairs

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--torch-dropout", action="store_true", help="torch's dropout (trainer.fast_dropout=false)")
    args = parser.parse_args()
    keep_freed_memory()  # the heap settings the train job runs with

    cfg = load(compose_config("train", ["model=mrl"]))
    pairs = training_pairs(cfg.data, None, cfg.seed, cfg.encode, None)
    batches = [pairs[i * args.batch:(i + 1) * args.batch] for i in range(args.steps + 2)]
    peaks = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    print(f"GEMM peak in this run: fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GFLOP/s; "
          f"{torch.get_num_threads()} threads; batch {args.batch}, {args.steps} timed steps after one warm-up, "
          "the precisions taking turns step by step")
    trainings = [Training(precision, cfg, args.torch_dropout) for precision in ("fp32", "bf16", "bf16 weights")]
    print(length_grouping_bound(trainings[0].model, pairs, args.batch, cfg.seed))
    with ExitStack() as stack:
        for training in trainings:
            stack.enter_context(training.dropout)
            training.step(batches[0])  # warm-up
        for batch in batches[1:-1]:
            for training in trainings:  # in turn: the machine's drift falls on every precision alike
                training.step(batch, timed=True)
        for training in trainings:
            with profile(activities=[ProfilerActivity.CPU], with_flops=True, record_shapes=True) as prof:
                training.step(batches[-1])
            training.report(prof, args.steps, peaks[training.precision[:4]])


def length_grouping_bound(model, pairs, batch: int, seed: int) -> str:
    """What batches of texts of like length could save at most: the tokens and attention's token pairs of an
    epoch batched in the order of one column's length, against a shuffled epoch's (``model`` tokenises)."""
    import numpy as np

    lengths = {column: model.preprocess(list(pairs[column]))["attention_mask"].sum(1).numpy()  # as truncated
               for column in ("anchor", "positive")}

    def computed(order: np.ndarray) -> np.ndarray:
        """(tokens, attention's token pairs) the batches of ``order`` compute, padded to their longest text."""
        total = np.zeros(2)
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            for column_lengths in lengths.values():
                longest = int(column_lengths[rows].max())
                total += (len(rows) * longest, len(rows) * longest ** 2)
        return total

    shuffled = computed(np.random.default_rng(seed).permutation(len(pairs)))
    saved = []
    for column, column_lengths in lengths.items():
        tokens, token_pairs = computed(np.argsort(column_lengths, kind="stable")) / shuffled
        saved.append(f"sorted by {column} length {1 - tokens:.1%} of the tokens, {1 - token_pairs:.1%} of "
                     "attention's token pairs")
    return "an epoch's batches against a shuffled epoch's: " + "; ".join(saved)


class Training:
    """One precision's model, objective and optimizer, and the step that trains them."""

    def __init__(self, precision: str, cfg, torch_dropout: bool):
        import torch

        from embedbench.embedding.dropout import drawn_fast
        from embedbench.embedding.encoder import LayerEncoder, load_model
        from embedbench.embedding.views import build_views
        from embedbench.losses import build_objective

        self.precision = precision
        self.model = load_model("default", "cpu")
        if precision == "bf16 weights":  # no fp32 master copy: a bound on what bf16 weights with one could save
            self.model.to(torch.bfloat16)
        encoder = LayerEncoder(self.model)
        views = build_views(cfg.model.views, encoder.n_layers, encoder.hidden_size)
        self.objective = build_objective(cfg.loss, encoder, views, cfg.model.objective, cfg.seed)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=2e-5, weight_decay=0.01)
        self.model.train()
        self.dropout = nullcontext() if torch_dropout else drawn_fast(self.model)
        self.autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else nullcontext
        self.seconds, self.real, self.computed = defaultdict(float), 0, 0

    def step(self, batch, timed: bool = False) -> None:
        from torch.profiler import record_function

        features = [self.model.preprocess(batch["anchor"]), self.model.preprocess(batch["positive"])]
        start = time.perf_counter()
        with record_function("forward"), self.autocast():
            loss = self.objective(features)
        forward = time.perf_counter()
        with record_function("backward"):
            loss.backward()
        backward = time.perf_counter()
        with record_function("optimizer"):
            self.optimizer.step()
            self.optimizer.zero_grad()
        if timed:
            for phase, seconds in zip(("forward", "backward", "optimizer"),
                                      (forward - start, backward - forward, time.perf_counter() - backward)):
                self.seconds[phase] += seconds
            self.real += sum(int(f["attention_mask"].sum()) for f in features)
            self.computed += sum(f["attention_mask"].numel() for f in features)

    def report(self, prof, steps: int, peak: float) -> None:
        events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        by_kind, gemm_flops = defaultdict(float), 0.0
        for event in events:
            by_kind[kind(event.key)] += event.self_cpu_time_total / 1e6
            if kind(event.key) == "GEMM":
                gemm_flops += event.flops or 0
        phases = self.seconds
        print(f"\n{self.precision}: {sum(phases.values()) / steps:.2f} s/step "
              f"(forward {phases['forward'] / steps:.2f}, backward {phases['backward'] / steps:.2f}, "
              f"optimizer {phases['optimizer'] / steps:.2f}); "
              f"padding {1 - self.real / self.computed:.1%} of the tokens computed")
        profiled = sum(by_kind.values())
        for name, seconds in sorted(by_kind.items(), key=lambda item: -item[1]):
            print(f"  {name:18s} {seconds / profiled:6.1%} of operator time")
        if by_kind["GEMM"]:
            rate = gemm_flops / by_kind["GEMM"] / 1e9
            print(f"  GEMMs run at {rate:.0f} GFLOP/s, {rate / peak:.0%} of the {self.precision[:4]} peak")
        print("  largest operators: " + ", ".join(
            f"{e.key} {e.self_cpu_time_total / 1e6 / profiled:.1%}" for e in events[:8]))
        print("  copy_ by what it copies: " + copies(prof, {tuple(p.shape) for p in self.model.parameters()}))


def copies(prof, weight_shapes: set[tuple[int, ...]]) -> str:
    """copy_'s seconds split by its tensors' shapes: the weights' (autocast's casts of them), tokens x tokens
    (attention scores and probabilities), the rest (activations)."""
    seconds = defaultdict(float)
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key == "aten::copy_" and event.input_shapes and event.input_shapes[0]:
            shape = tuple(event.input_shapes[0])
            what = ("weights" if shape in weight_shapes else
                    "tokens x tokens" if len(shape) == 4 and shape[-1] == shape[-2] else "other")
            seconds[what] += event.self_cpu_time_total / 1e6
    return ", ".join(f"{what} {seconds[what]:.3f} s" for what in ("weights", "tokens x tokens", "other"))


if __name__ == "__main__":
    main()
