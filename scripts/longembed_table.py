#!/usr/bin/env python
"""The long-input table of docs/results/longembed.md from one sweep over ``model.long``: nDCG@1 of each
synthetic task (kind x length) per strategy, and their average.

    embedbench eval -m eval=longembed_synthetic 'eval.tasks.longembed_synthetic.lengths=[256,512,1024,2048,4096]' \\
        model.long=truncate,chunk,interpolate
    python scripts/longembed_table.py outputs/multirun/<date>/<time>
"""
from __future__ import annotations

from sweep_results import sweep_results


def main() -> None:
    runs = {}
    for result in sweep_results(__doc__):
        model = result["config"]["model"]
        label = model["long"] + (f" to {model['long_length']}" if model["long"] not in ("truncate", "chunk") else "")
        runs[label] = result
    task = next(iter(runs.values()))["config"]["eval"]["tasks"]["longembed_synthetic"]
    kinds, lengths = task["kinds"], task["lengths"]
    print("| task | " + " | ".join(f"{n // 1024}k" if n >= 1024 else str(n) for n in lengths) + " | average |")
    print("|---" * (len(lengths) + 2) + "|")
    for kind in kinds:
        for label, result in runs.items():
            metrics = result["metrics"]
            scores = [metrics[f"{kind}_{n}/ndcg_at_1"] for n in lengths]
            print(f"| {kind}, {label} | " + " | ".join(f"{s:.2f}" for s in scores)
                  + f" | {sum(scores) / len(scores):.3f} |")
    print("\naverage of every task (longembed_synthetic/ndcg_at_1): " + ", ".join(
        f"{label} {result['metrics']['longembed_synthetic/ndcg_at_1']:.3f}" for label, result in runs.items()))


if __name__ == "__main__":
    main()
