#!/usr/bin/env python
"""SciFact eval wall time and nDCG@10: mteb vs `embedbench eval` (fp32, torch bf16, encode=fast, encode=int8), one run.

    python scripts/bench_eval.py            # full SciFact test set (minutes)
    python scripts/bench_eval.py --queries 30 --docs 500   # a quick slice
    python scripts/bench_eval.py --modes fast int8          # mteb, `encode=fast` and `encode=int8` only

Each contender runs in its own process, timed from outside, so both pay interpreter start,
imports and model loading: embedbench as the real CLI (MLflow logging and all, cache off),
mteb through `mteb.evaluate` on a local retrieval task over the same files (this script
re-invoked with --mteb-only). Prints each time beside mteb's and the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.setdefault("EMBEDBENCH_DATA", str(REPO.parent / "shared" / "data")))


def scifact_folder(queries: int | None, docs: int | None, workdir: Path) -> Path:
    """The SciFact folder itself, or a slice of it written in BEIR format."""
    from embedbench.data.beir import load_beir, subsample, write_beir

    root = DATA / "beir" / "scifact"
    if not queries and not docs:
        return root
    return write_beir(workdir / "scifact", subsample(load_beir("scifact", root, "test"), queries, docs, seed=0))


def mteb_only(root: Path) -> None:
    """Child process: mteb's score on the folder, printed as JSON on the last line."""
    from sentence_transformers import SentenceTransformer

    from embedbench import mteb_reference
    from embedbench.data.beir import load_beir
    from embedbench.embedding.sources import resolve_model_path

    model = SentenceTransformer(resolve_model_path("default")[0], device="cpu")
    scores = mteb_reference.scores(model, mteb_reference.retrieval_task(load_beir("scifact", root, "test")))
    print(json.dumps({"ndcg_at_10": scores["ndcg_at_10"]}))


def run_mteb(root: Path) -> tuple[float, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--mteb-only", str(root)], check=True, stdout=subprocess.PIPE,
                         text=True).stdout
    return time.perf_counter() - start, json.loads(out.strip().splitlines()[-1])["ndcg_at_10"]


EMBEDBENCH_MODES = {  # label: overrides (batch size left at its default, auto)
    "embedbench fp32": ["encode.precision=fp32"],
    "embedbench torch bf16": ["encode.precision=bf16", "encode.backend=torch"],
    "embedbench encode=fast": ["encode=fast"],
    "embedbench encode=int8": ["encode=int8"],
}


def run_embedbench(root: Path, label: str, workdir: Path) -> tuple[float, float]:
    folder = workdir / re.sub(r"\W+", "_", label)
    start = time.perf_counter()
    # model=mrl: MiniLM as shipped, scored at dims 384..32 too (slices of the same pass)
    subprocess.run([sys.executable, "-m", "embedbench", "eval", "eval=beir", "model=mrl", f"data.root={root}",
                    *EMBEDBENCH_MODES[label], "eval.cache=false", f"hydra.run.dir={folder}",
                    f"logger.tracking_uri=sqlite:///{workdir}/mlflow.db",
                    f"logger.artifact_location={workdir}/artifacts"], check=True, cwd=workdir)
    elapsed = time.perf_counter() - start
    metrics = json.loads((folder / "results.json").read_text())["metrics"]
    print(f"{label} nDCG@10 by dim: " + "  ".join(
        f"{name.rsplit('/', 1)[-1]}={value:.5f}" for name, value in metrics.items()
        if name.startswith("scifact/ndcg_at_10")))
    return elapsed, metrics["scifact/ndcg_at_10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, help="score a random subset of test queries")
    parser.add_argument("--docs", type=int, help="corpus size of the slice")
    parser.add_argument("--modes", nargs="+", choices=("fp32", "bf16", "fast", "int8"),
                        default=["fp32", "bf16", "fast", "int8"],
                        help="the embedbench runs beside mteb's")
    parser.add_argument("--mteb-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mteb_only:
        return mteb_only(args.mteb_only)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        root = scifact_folder(args.queries, args.docs, workdir)
        rows = [("mteb (fp32)", *run_mteb(root))]
        for label in [label for label in EMBEDBENCH_MODES if label.split()[-1].removeprefix("encode=") in args.modes]:
            rows.append((label, *run_embedbench(root, label, workdir)))
    base_time, base_score = rows[0][1], rows[0][2]
    print(f"\nSciFact test, all-MiniLM-L6-v2, {'full set' if not args.queries else 'slice'}, "
          f"{os.cpu_count()} cpus, each run a fresh process")
    print(f"{'':24s} {'wall s':>8s} {'x mteb':>7s} {'nDCG@10':>9s} {'diff':>9s}")
    for name, seconds, score in rows:
        print(f"{name:24s} {seconds:8.1f} {seconds / base_time:7.2f} {score:9.5f} {score - base_score:+9.5f}")


if __name__ == "__main__":
    main()
