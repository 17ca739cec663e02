#!/usr/bin/env python
"""The retrieval-recipe table of docs/results/recipes.md from one sweep: SciFact nDCG@10 (full and d64) per
recipe, beside plain InfoNCE from the same sweep and the untrained model.

    embedbench train -m experiment=recipe_infonce,recipe_mined,... logger.experiment=recipes   # make recipes
    embedbench eval model=mrl eval=beir hydra.run.dir=outputs/recipes_untrained       # the untrained row
    python scripts/recipes_table.py outputs/multirun/<date>/<time> --untrained outputs/recipes_untrained/results.json

Deltas are against plain InfoNCE (recipe_infonce) from the same sweep.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

METRIC = "scifact/ndcg_at_10"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="the multirun folder (outputs/multirun/<date>/<time>)")
    parser.add_argument("--untrained", type=Path, help="results.json of `embedbench eval model=mrl eval=beir`")
    args = parser.parse_args()
    rows = []
    for path in sorted(args.sweep.glob("*/results.json"), key=lambda p: int(p.parent.name)):
        result = json.loads(path.read_text())
        overrides = (path.parent / ".hydra" / "overrides.yaml").read_text()
        recipe = next(line.split("=", 1)[1].strip() for line in overrides.splitlines() if "experiment=" in line)
        rows.append((recipe.removeprefix("recipe_"), result["metrics"], result["config"]))
    base = next((m for name, m, _ in rows if name == "infonce"), None)
    if args.untrained:
        rows.insert(0, ("untrained", json.loads(args.untrained.read_text())["metrics"], None))
    print("| recipe | nDCG@10 full | d64 | full vs InfoNCE | d64 vs InfoNCE | train s |")
    print("|---|---|---|---|---|---|")
    for name, metrics, _ in rows:
        full, d64 = metrics[METRIC], metrics[f"{METRIC}/d64"]
        delta = (f"{full - base[METRIC]:+.4f} | {d64 - base[f'{METRIC}/d64']:+.4f}" if base else "| ")
        seconds = metrics.get("train/seconds")
        print(f"| {name} | {full:.4f} | {d64:.4f} | {delta} | {seconds:.0f} |" if seconds else
              f"| {name} | {full:.4f} | {d64:.4f} | {delta} | |")


if __name__ == "__main__":
    main()
