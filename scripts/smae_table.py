#!/usr/bin/env python
"""The SMAE table of docs/results/2d.md from one sweep of the Starbucks fine-tune over its starting model:
nDCG@10 at each Starbucks (layer, dim) pair and their mean, from the shipped MiniLM and from an SMAE
pre-training run's model, and the difference.

    embedbench train experiment=starbucks_smae trainer.max_steps=60 trainer.grad_accum=1 trainer.bf16=true \\
        model.max_seq_length=128 hydra.run.dir=outputs/smae_pretrain
    embedbench train -m experiment=starbucks_retrieval model.max_seq_length=256 \\
        model.name_or_path=default,outputs/smae_pretrain/model
    python scripts/smae_table.py outputs/multirun/<date>/<time>
"""
from __future__ import annotations

from sweep_results import sweep_results

from embedbench.embedding.views import View, ViewSet

METRIC = "scifact/ndcg_at_10"


def main() -> None:
    results = sweep_results(__doc__)
    if len(results) != 2:
        raise SystemExit(f"the sweep needs two runs (from the shipped model and from SMAE), it has {len(results)}")
    pairs = [tuple(pair) for pair in results[0]["config"]["model"]["views"]["pairs"]]
    names = ViewSet((), max(layer for layer, _ in pairs), max(dim for _, dim in pairs))
    rows = {}
    for result in results:
        start = result["config"]["model"]["name_or_path"]
        metrics = result["metrics"]
        rows["Starbucks from " + ("MiniLM" if start == "default" else "SMAE")] = [
            metrics[METRIC + names.name(View(layer, dim))] for layer, dim in pairs]
    print("| (layer, dim) | " + " | ".join(f"({layer},{dim})" for layer, dim in pairs) + " | mean |")
    print("|---|" + "---|" * (len(pairs) + 1))
    for name, scores in rows.items():
        print(f"| {name} | " + " | ".join(f"{s:.4f}" for s in scores) + f" | {sum(scores) / len(scores):.4f} |")
    base, smae = rows.values()
    print("| SMAE - MiniLM | " + " | ".join(f"{b - a:+.4f}" for a, b in zip(base, smae))
          + f" | {(sum(smae) - sum(base)) / len(base):+.4f} |")


if __name__ == "__main__":
    main()
