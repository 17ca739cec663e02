#!/usr/bin/env python
"""One-view eval vs the full layer x dim grid vs a cached re-run: `embedbench eval` three times, one run.

    python scripts/bench_grid.py                 # full SciFact test set (minutes)
    python scripts/bench_grid.py --queries 50 --docs 800

1. plain eval (MiniLM, one view), cache on: encodes and stores the last layer;
2. the same with eval.grid=full (6 layers x 5 dims = 30 views), cache off: one pass, every layer;
3. plain eval again: every embedding comes from the cache.
Each is the real CLI in a fresh process; prints times, ratios to (1), and whether the scores agree.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_eval import scifact_folder  # noqa: E402  (same data set-up as the eval benchmark)


def run(root: Path, workdir: Path, name: str, *overrides: str) -> tuple[float, dict]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "embedbench", "eval", "eval=beir", f"data.root={root}",
                    f"hydra.run.dir={workdir / name}", f"logger.tracking_uri=sqlite:///{workdir}/mlflow.db",
                    f"logger.artifact_location={workdir}/artifacts", f"eval.cache_dir={workdir}/cache", *overrides],
                   check=True, cwd=workdir)
    elapsed = time.perf_counter() - start
    return elapsed, json.loads((workdir / name / "results.json").read_text())["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int)
    parser.add_argument("--docs", type=int)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        root = scifact_folder(args.queries, args.docs, workdir)
        plain_s, plain = run(root, workdir, "plain")
        grid_s, grid = run(root, workdir, "grid", "eval.grid=full", "eval.cache=false")
        cached_s, cached = run(root, workdir, "cached")
    views = [k for k in grid if k.startswith("scifact/ndcg_at_10")]
    print(f"\nSciFact test{' slice' if args.queries else ''}, MiniLM, each run a fresh process")
    print(f"{'run':32s} {'wall s':>8s} {'x plain':>8s}  nDCG@10")
    print(f"{'plain (1 view)':32s} {plain_s:8.1f} {1:8.2f}  {plain['scifact/ndcg_at_10']:.5f}")
    print(f"{f'grid=full ({len(views)} views)':32s} {grid_s:8.1f} {grid_s / plain_s:8.2f}  "
          f"{grid['scifact/ndcg_at_10']:.5f} "
          f"(l6_d384 cell, equal: {grid['scifact/ndcg_at_10'] == plain['scifact/ndcg_at_10']})")
    print(f"{'plain again (cache)':32s} {cached_s:8.1f} {cached_s / plain_s:8.2f}  "
          f"{cached['scifact/ndcg_at_10']:.5f} (equal: {cached['scifact/ndcg_at_10'] == plain['scifact/ndcg_at_10']})")
    print(f"speed-up of the cached re-run: {plain_s / cached_s:.1f}x")


if __name__ == "__main__":
    main()
