#!/usr/bin/env python
"""What keeping OpenVINO's converted model in the embedding cache saves a fresh `encode=fast` eval.

    python scripts/bench_conversion.py              # STS-B test, 3 rounds
    python scripts/bench_conversion.py --rounds 5
    python scripts/bench_conversion.py --memory     # the memory a conversion takes, against its estimate

The case it serves: a model already evaluated once (any task) is evaluated on texts it has not encoded
yet. Each round runs `embedbench eval eval=sts encode=fast` twice as a fresh process, timed from outside:
with the cache off (the model is converted), and with a cache holding only that model's conversion (kept
by a first eval on MRPC; no STS-B embeddings in it, so every text is encoded). The order alternates
between rounds. Prints both times, their ratio and both Spearman scores, which must be equal.

`--memory`: a randomly initialised BERT-large (335M parameters, 1.34 GB in fp32), built in fp32 and in bf16,
converted for bf16 and for int8 with the conversion kept in a cache, each in a fresh process, then read back
from that cache by another. Prints the peak resident memory beyond the model of each beside
`runtimes.conversion_bytes`, the estimate that refuses a conversion the memory left cannot hold.
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


def resident(field: str) -> int:
    """``VmRSS`` (now) or ``VmHWM`` (the peak since the last reset) of this process, in bytes."""
    line = next(line for line in open("/proc/self/status") if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def conversion_peak(weights: str, precision: str, cache: str) -> None:
    """In this process: the peak memory beyond the model itself of making its runtime with ``cache`` (empty:
    converting it; holding its conversion: reading it back), as JSON."""
    import torch
    from transformers import BertConfig, BertModel

    from embedbench.embedding.cache import EmbeddingCache
    from embedbench.embedding.runtimes import OpenVinoRuntime, conversion_bytes

    config = BertConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16)
    torch.manual_seed(0)
    model = BertModel._from_config(config, dtype=getattr(torch, weights)).eval()
    example = {"input_ids": torch.tensor([[101, 2000, 102, 0], [101, 2000, 2001, 102]]),
               "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])}
    before = resident("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak starts again from here
    OpenVinoRuntime(model, {"input_ids", "attention_mask"}, example, precision,
                    cache=EmbeddingCache(Path(cache), 1 << 40), weights_key="w")
    print(json.dumps({"fp32": sum(p.numel() for p in model.parameters()) * 4,
                      "peak": resident("VmHWM") - before, "estimate": conversion_bytes(model)}))


def memory_table() -> None:
    print(f"\na random BERT-large converted and kept in a cache, then read back, fresh processes, "
          f"{os.cpu_count()} cpus")
    print(f"{'weights':8s} {'precision':9s} {'':10s} {'peak GB':>8s} {'x fp32':>7s} {'estimate GB':>11s} "
          f"{'x fp32':>7s}")
    for weights in ("float32", "bfloat16"):
        for precision in ("bf16", "int8"):
            with tempfile.TemporaryDirectory() as cache:
                for step in ("converted", "read back"):
                    child = subprocess.run([sys.executable, __file__, "--conversion-peak", weights, precision,
                                            cache], check=True, capture_output=True, text=True)
                    row = json.loads(child.stdout.strip().splitlines()[-1])
                    estimate = (f"{row['estimate'] / 1e9:11.2f} {row['estimate'] / row['fp32']:7.2f}"
                                if step == "converted" else "")
                    print(f"{weights:8s} {precision:9s} {step:10s} {row['peak'] / 1e9:8.2f} "
                          f"{row['peak'] / row['fp32']:7.2f} {estimate}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--conversion-peak", nargs=3, metavar=("WEIGHTS", "PRECISION", "CACHE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.conversion_peak:
        return conversion_peak(*args.conversion_peak)
    if args.memory:
        return memory_table()
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
