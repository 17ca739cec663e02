#!/usr/bin/env python
"""`embedbench eval eval=mteb_lite` against mteb 2.26 on the same five local data sets, in one run.

    python scripts/bench_suite.py                  # full sets, all-MiniLM-L6-v2, fp32 (minutes)
    python scripts/bench_suite.py --encode int8    # embedbench with encode=int8 (or fast) against mteb's fp32

mteb runs offline on local copies of each set (its own task classes, data handed over in
``load_data``, clustering sampled by mteb's own ``stratified_subsampling`` as StackExchangeClustering.v2
does); embedbench runs as the CLI in a fresh process. Prints each main score from both, the
difference, and both wall times.
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

from embedbench.data.beir import load_beir, resolve_root
from embedbench.data.files import data_file
from embedbench.data.tables import read_labelled, read_labelled_pairs, read_line_aligned, read_sts_benchmark
from embedbench.embedding.encoder import load_model
from embedbench.tasks.classification import label_ids


def mteb_tasks() -> dict:
    """mteb's own task classes over the five local sets, keyed by the embedbench metric they match."""
    from embedbench import mteb_reference as ref

    scifact = load_beir("scifact", resolve_root("scifact", None), "test")
    sts = read_sts_benchmark(data_file("sts/stsbenchmark/sts-test.csv", "sts"))
    banking = [read_labelled(data_file(f"classification/banking77/{s}.csv", s), "text", "category")
               for s in ("train", "test")]
    so = read_line_aligned(data_file("clustering/stackoverflow/StackOverflow.txt", "so"),
                           data_file("clustering/stackoverflow/StackOverflow_gnd.txt", "so"))
    mrpc = read_labelled_pairs(data_file("pair_classification/mrpc/msr_paraphrase_test.txt", "mrpc"),
                               "#1 String", "#2 String", "Quality")
    return {"scifact/ndcg_at_10": ref.retrieval_task(scifact), "stsb/spearman": ref.sts_task(sts),
            "banking77/accuracy": ref.classification_task(*banking, label_ids(*banking)),
            "stackoverflow/v_measure": ref.clustering_task(so), "mrpc/ap": ref.pair_classification_task(mrpc)}


ENCODE = {"fp32": "encode.precision=fp32", "fast": "encode=fast", "int8": "encode=int8"}


def main() -> None:
    import mteb

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encode", choices=ENCODE, default="fp32", help="how embedbench encodes")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tasks = mteb_tasks()
    start = time.perf_counter()
    results = mteb.evaluate(load_model("default", "cpu"), list(tasks.values()), cache=None,
                            encode_kwargs={"batch_size": 32})
    mteb_s = time.perf_counter() - start
    reference = {name: float(result.get_score()) for name, result in zip(tasks, results.task_results)}

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "embedbench", "eval", "eval=mteb_lite", ENCODE[args.encode],
                        "eval.cache=false", f"hydra.run.dir={tmp}/run", f"logger.tracking_uri=sqlite:///{tmp}/m.db",
                        f"logger.artifact_location={tmp}/artifacts"], check=True, cwd=tmp)
        ours_s = time.perf_counter() - start
        ours = json.loads((Path(tmp) / "run" / "results.json").read_text())["metrics"]

    print(f"\nall-MiniLM-L6-v2, full local sets, one run on this machine: mteb fp32, embedbench {ENCODE[args.encode]}")
    print(f"{'metric':26s} {'mteb 2.26':>10s} {'embedbench':>11s} {'difference':>11s}")
    for name, value in reference.items():
        print(f"{name:26s} {value:10.5f} {ours[name]:11.5f} {ours[name] - value:+11.5f}")
    average = sum(reference.values()) / len(reference)
    print(f"{'mteb_lite/average':26s} {average:10.5f} {ours['mteb_lite/average']:11.5f} "
          f"{ours['mteb_lite/average'] - average:+11.5f}")
    print(f"wall time: mteb {mteb_s:.0f} s, embedbench {ours_s:.0f} s ({ours_s / mteb_s:.2f}x)")


if __name__ == "__main__":
    main()
