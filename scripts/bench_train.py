#!/usr/bin/env python
"""Training throughput: the headline run's training (MRL MiniLM, InfoNCE over dims 384..32, SciFact train,
1 epoch, batch 32, lr 2e-5, warm-up 10 %, seed 42) in embedbench against sentence-transformers' own trainer
with MatryoshkaLoss(MultipleNegativesRankingLoss, scale 20) on the same pairs, in one run.

    python scripts/bench_train.py                # embedbench's defaults (trainer.bf16=auto) against fp32
    python scripts/bench_train.py --bf16 false   # embedbench in fp32 too
    python scripts/bench_train.py --attention-dropout 0   # and no dropout on attention probabilities
    python scripts/bench_train.py --torch-dropout  # embedbench also with torch's dropout (fast_dropout=false)

Prints for each: wall seconds of training, training tokens/s, the share of the ceiling (a step costs about
3 forward passes: 3 x forward FLOPs per token against the GEMM peak measured in this run), and nDCG@10 on
full SciFact at the full width and at d64, both scored by `embedbench eval` (exact search, fp32).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("EMBEDBENCH_DATA", str(REPO.parent / "shared" / "data"))
DIMS = [384, 256, 128, 64, 32]


def embedbench(*args: str, cwd: Path) -> dict:
    """A fresh `embedbench` process; its results.json."""
    run_dir = cwd / f"run-{len(list(cwd.glob('run-*')))}"
    subprocess.run([sys.executable, "-m", "embedbench", *args, f"hydra.run.dir={run_dir}", "logger.log_model=false"],
                   cwd=cwd, check=True)
    return json.loads((run_dir / "results.json").read_text())


def sentence_transformers_training(pairs, out: Path, batch: int, lr: float, seed: int) -> float:
    """Seconds of `SentenceTransformerTrainer.train()`; the model saved to ``out``."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss, MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    from embedbench.embedding.encoder import load_model

    model = load_model("default", "cpu")
    loss = MatryoshkaLoss(model, MultipleNegativesRankingLoss(model, scale=20.0), matryoshka_dims=DIMS)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out / "checkpoints"), num_train_epochs=1, per_device_train_batch_size=batch,
        learning_rate=lr, warmup_steps=0.1, weight_decay=0.01, seed=seed, data_seed=seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no", report_to="none", use_cpu=True)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=pairs, loss=loss)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    model.save(str(out / "model"))
    return seconds


def main() -> None:
    import torch
    from bench_encode import flops_per_token, gemm_peak

    from embedbench.cli import compose_config
    from embedbench.composition import load
    from embedbench.data.pairs import training_pairs
    from embedbench.embedding.encoder import LayerEncoder, load_model
    from embedbench.jobs.train import training_bf16

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bf16", choices=("auto", "true", "false"), default="auto",
                        help="embedbench's trainer.bf16 (auto: bf16 where native; the baseline stays fp32)")
    parser.add_argument("--attention-dropout", type=float, help="embedbench trains with trainer.attention_dropout "
                        "set to this (the baseline keeps the model's 0.1)")
    parser.add_argument("--torch-dropout", action="store_true", help="also train embedbench with "
                        "trainer.fast_dropout=false: torch's own dropout masks and attention")
    args = parser.parse_args()

    cfg = load(compose_config("train", ["model=mrl", "loss=infonce", "data=scifact"]))
    pairs = training_pairs(cfg.data, None, cfg.seed, cfg.encode, None)
    encoder = LayerEncoder(load_model("default", "cpu"))
    lengths = encoder.token_lengths(list(pairs["anchor"]) + list(pairs["positive"]))
    tokens, mean_length = int(lengths.sum()), float(lengths.mean())
    train_flops = 3 * tokens * flops_per_token(encoder.n_layers, encoder.hidden_size, mean_length)
    peaks = {"fp32": gemm_peak(torch.float32), "bf16": gemm_peak(torch.bfloat16)}
    print(f"{len(pairs)} pairs, {tokens:,} tokens per epoch; {torch.get_num_threads()} threads; GEMM peak "
          f"fp32 {peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GFLOP/s", flush=True)

    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        seconds = sentence_transformers_training(pairs, work / "st", cfg.trainer.batch_size, cfg.trainer.lr,
                                                 cfg.seed)
        scored = embedbench("eval", "model=mrl", f"model.name_or_path={work / 'st' / 'model'}", "eval=beir",
                            "eval.cache=false", cwd=work)["metrics"]
        rows["sentence-transformers fp32"] = (seconds, scored)
        precision = "bf16" if training_bf16({"true": True, "false": False}.get(args.bf16, "auto"), "cpu") else "fp32"
        settings = [f"trainer.bf16={args.bf16}", *([f"trainer.attention_dropout={args.attention_dropout}"]
                                                    if args.attention_dropout is not None else [])]
        label = f"embedbench {precision}" + (f", attn dropout {args.attention_dropout:g}"
                                             if args.attention_dropout is not None else "")
        runs = {label + (" (defaults)" if settings == ["trainer.bf16=auto"] else ""): settings}
        if args.torch_dropout:
            runs[label + ", torch's dropout"] = [*settings, "trainer.fast_dropout=false"]
        for name, overrides in runs.items():
            result = embedbench("train", "model=mrl", "loss=infonce", "data=scifact", "eval=beir", "eval.cache=false",
                                "trainer.save_every=0", *overrides, cwd=work)
            rows[name] = (result["metrics"]["train/seconds"], result["metrics"])

    base = rows["sentence-transformers fp32"][0]
    print(f"\n{'trainer':<40}{'train s':>9}{'x ST':>7}{'tok/s':>9}{'% ceiling':>11}{'nDCG@10':>9}{'d64':>8}")
    for name, (seconds, metrics) in rows.items():
        peak = peaks["bf16" if "bf16" in name else "fp32"]
        share = 100 * train_flops / seconds / (peak * 1e9)
        print(f"{name:<40}{seconds:>9.1f}{seconds / base:>7.2f}{tokens / seconds:>9,.0f}{share:>10.1f}%"
              f"{metrics['scifact/ndcg_at_10']:>9.4f}{metrics['scifact/ndcg_at_10/d64']:>8.4f}")


if __name__ == "__main__":
    main()
