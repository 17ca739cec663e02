#!/usr/bin/env python
"""What keeping OpenVINO's converted model in the embedding cache saves a fresh `encode=fast` eval.

    python scripts/bench_conversion.py              # STS-B test, 3 rounds
    python scripts/bench_conversion.py --rounds 5

The case it serves: a model already evaluated once (any task) is evaluated on texts it has not encoded
yet. Each round runs `embedbench eval eval=sts encode=fast` twice as a fresh process, timed from outside:
with the cache off (the model is converted), and with a cache holding only that model's conversion (kept
by a first eval on MRPC; no STS-B embeddings in it, so every text is encoded). The order alternates
between rounds. Prints both times, their ratio and both Spearman scores, which must be equal.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("EMBEDBENCH_DATA", str(REPO.parent / "shared" / "data"))


def eval_run(workdir: Path, name: str, *overrides: str) -> tuple[float, float | None]:
    folder = workdir / name
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "embedbench", "eval", "encode=fast", *overrides,
                    f"hydra.run.dir={folder}", f"logger.tracking_uri=sqlite:///{workdir}/mlflow.db",
                    f"logger.artifact_location={workdir}/artifacts"], check=True, cwd=workdir,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, json.loads((folder / "results.json").read_text())["metrics"].get("stsb/spearman")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        kept = workdir / "kept"
        eval_run(workdir, "warm-up", "eval=mrpc", f"eval.cache_dir={kept}")
        if list(kept.rglob("*.npy")) == [] or len(list(kept.rglob("*.ov"))) != 1:
            sys.exit(f"expected the MRPC eval to keep embeddings and one conversion in {kept}")
        for entry in kept.rglob("*.npy"):
            entry.unlink()  # only the conversion stays
        runs = {"converted (eval.cache=false)": ["eval.cache=false"],
                "conversion read back from the cache": None}
        seconds, scores = dict.fromkeys(runs, 0.0), {}
        for round_ in range(args.rounds):
            for i, label in enumerate(list(runs) if round_ % 2 == 0 else list(runs)[::-1]):
                overrides = runs[label]
                if overrides is None:  # a copy of the cache with the conversion alone, every round
                    copy = workdir / f"cache-{round_}"
                    shutil.copytree(kept, copy)
                    overrides = [f"eval.cache_dir={copy}"]
                took, score = eval_run(workdir, f"r{round_}-{i}", "eval=sts", *overrides)
                seconds[label] += took
                scores.setdefault(label, set()).add(score)
    print(f"\n`embedbench eval eval=sts encode=fast`, fresh processes, {args.rounds} rounds, {os.cpu_count()} cpus")
    print(f"{'':38s} {'wall s':>7s} {'x converting':>12s}  Spearman")
    base = seconds["converted (eval.cache=false)"] / args.rounds
    for label, total in seconds.items():
        print(f"{label:38s} {total / args.rounds:7.2f} {total / args.rounds / base:12.3f}  "
              + ", ".join(f"{s:.6f}" for s in sorted(scores[label])))


if __name__ == "__main__":
    main()
