#!/usr/bin/env python
"""The compatible-training table of docs/results/compat.md from one sweep over ``loss.compat.reference``:
nDCG@10 per view of each run's own queries and documents (new/new), its queries against the reference's
documents (new -> old) and the reference against itself (old/old), beside the plain fine-tune of the sweep.

    embedbench train -m model=mrl loss=infonce data=scifact eval=beir eval.compat.reference=default \\
        encode=fast trainer.bf16=true trainer.save_every=0 'loss.compat.reference=null,default'
    python scripts/compat_table.py outputs/multirun/<date>/<time>
"""
from __future__ import annotations

from sweep_results import sweep_results

METRIC = "scifact/ndcg_at_10"


def main() -> None:
    runs = {"term" if result["config"]["loss"]["compat"]["reference"] else "plain": result["metrics"]
            for result in sweep_results(__doc__)}
    if set(runs) != {"plain", "term"}:
        raise SystemExit("the sweep needs one run without loss.compat.reference and one with it")
    plain, term = runs["plain"], runs["term"]
    views = [k[len(METRIC) + 2:] for k in plain if k.startswith(f"{METRIC}/d")]
    dims = sorted((int(v) for v in views if v.isdigit()), reverse=True)
    print("| view | plain: new/new | plain: new -> old | with term: new/new | with term: new -> old | old/old "
          "| new/new, term vs plain |")
    print("|---|---|---|---|---|---|---|")
    for view, own, other in [("full", "", "/"), *((f"d{d}", f"/d{d}", f"/d{d}_") for d in dims)]:
        print(f"| {view} | {plain[METRIC + own]:.4f} | {plain[METRIC + other + 'compat']:.4f} "
              f"| {term[METRIC + own]:.4f} | **{term[METRIC + other + 'compat']:.4f}** "
              f"| {plain[METRIC + other + 'reference']:.4f} | {term[METRIC + own] - plain[METRIC + own]:+.4f} |")


if __name__ == "__main__":
    main()
