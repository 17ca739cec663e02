#!/usr/bin/env python
"""`embedbench eval eval=mteb_lite` against mteb 2.26 on the same five local data sets, in one run.

    python scripts/bench_suite.py        # full sets, all-MiniLM-L6-v2, fp32 (~15 min here)

mteb runs offline on local copies of each set (its own task classes, data handed over in
``load_data``, clustering sampled by mteb's own ``stratified_subsampling`` as StackExchangeClustering.v2
does); embedbench runs as the CLI in a fresh process. Prints each main score from both, the
difference, and both wall times.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from embedbench.data.beir import load_beir, resolve_root
from embedbench.data.files import data_file
from embedbench.data.sts import read_sts
from embedbench.data.tables import read_labelled, read_labelled_pairs, read_line_aligned
from embedbench.encoder import load_model
from embedbench.tasks.classification import label_ids


def local_task(base, task_type: str, main_score: str, load, **attributes):
    from mteb.abstasks.task_metadata import TaskMetadata

    metadata = TaskMetadata(
        name=f"Local{task_type}", description="local copy", reference="https://example.org", type=task_type,
        category="t2t", modalities=["text"], eval_splits=["test"], eval_langs=["eng-Latn"], main_score=main_score,
        dataset={"path": "local", "revision": "local"}, date=None, domains=None, task_subtypes=None, license=None,
        annotations_creators=None, dialect=None, sample_creation=None, bibtex_citation="")
    return type(f"Local{task_type}", (base,), {"metadata": metadata, "load_data": load, **attributes})()


def mteb_tasks():
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.classification import AbsTaskClassification
    from mteb.abstasks.clustering import AbsTaskClustering
    from mteb.abstasks.pair_classification import AbsTaskPairClassification
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData
    from mteb.abstasks.sts import AbsTaskSTS

    scifact = load_beir("scifact", resolve_root("scifact", None), "test")
    sts = read_sts(data_file("sts/stsbenchmark/sts-test.csv", "sts"))
    banking = [read_labelled(data_file(f"classification/banking77/{s}.csv", s), "text", "category")
               for s in ("train", "test")]
    ids = label_ids(*banking)
    so = read_line_aligned(data_file("clustering/stackoverflow/StackOverflow.txt", "so"),
                           data_file("clustering/stackoverflow/StackOverflow_gnd.txt", "so"))
    mrpc = read_labelled_pairs(data_file("pair_classification/mrpc/msr_paraphrase_test.txt", "mrpc"),
                               "#1 String", "#2 String", "Quality")

    def retrieval(self, **kwargs):
        corpus = Dataset.from_list([{"id": d, **v} for d, v in scifact.corpus.items()])
        queries = Dataset.from_list([{"id": q, "text": t} for q, t in scifact.queries.items()])
        self.dataset = {"default": {"test": RetrievalSplitData(corpus=corpus, queries=queries,
                                                               relevant_docs=scifact.qrels, top_ranked=None)}}
        self.data_loaded = True

    def sts_load(self, **kwargs):
        self.dataset = {"default": {"test": Dataset.from_dict(
            {"sentence1": sts.sentences1, "sentence2": sts.sentences2, "score": sts.scores})}}
        self.data_loaded = True

    def classification(self, **kwargs):
        self.dataset = DatasetDict({split: Dataset.from_dict({"text": d.texts, "label": [ids[x] for x in d.labels]})
                                    for split, d in zip(("train", "test"), banking)})
        self.data_loaded = True

    def clustering(self, **kwargs):
        full = DatasetDict({"test": Dataset.from_dict({"sentences": so.texts, "labels": so.labels})})
        self.dataset = self.stratified_subsampling(full, self.seed, ["test"], label="labels")
        self.data_loaded = True

    def pairs(self, **kwargs):
        self.dataset = {"test": Dataset.from_dict({"sentence1": mrpc.sentences1, "sentence2": mrpc.sentences2,
                                                   "labels": mrpc.labels})}
        self.data_loaded = True

    return {"scifact/ndcg_at_10": local_task(AbsTaskRetrieval, "Retrieval", "ndcg_at_10", retrieval),
            "stsb/spearman": local_task(AbsTaskSTS, "STS", "cosine_spearman", sts_load),
            "banking77/accuracy": local_task(AbsTaskClassification, "Classification", "accuracy", classification),
            "stackoverflow/v_measure": local_task(AbsTaskClustering, "Clustering", "v_measure", clustering,
                                                  max_fraction_of_documents_to_embed=None),
            "mrpc/ap": local_task(AbsTaskPairClassification, "PairClassification", "max_ap", pairs)}


def main() -> None:
    import mteb

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tasks = mteb_tasks()
    start = time.perf_counter()
    results = mteb.evaluate(load_model("default", "cpu"), list(tasks.values()), cache=None,
                            encode_kwargs={"batch_size": 32})
    mteb_s = time.perf_counter() - start
    reference = {name: float(result.get_score()) for name, result in zip(tasks, results.task_results)}

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "embedbench", "eval", "eval=mteb_lite", "encode.precision=fp32",
                        "eval.cache=false", f"hydra.run.dir={tmp}/run", f"logger.tracking_uri=sqlite:///{tmp}/m.db",
                        f"logger.artifact_location={tmp}/artifacts"], check=True, cwd=tmp)
        ours_s = time.perf_counter() - start
        ours = json.loads((Path(tmp) / "run" / "results.json").read_text())["metrics"]

    print("\nall-MiniLM-L6-v2, fp32, full local sets, one run on this machine")
    print(f"{'metric':26s} {'mteb 2.26':>10s} {'embedbench':>11s} {'difference':>11s}")
    for name, value in reference.items():
        print(f"{name:26s} {value:10.5f} {ours[name]:11.5f} {ours[name] - value:+11.5f}")
    average = sum(reference.values()) / len(reference)
    print(f"{'mteb_lite/average':26s} {average:10.5f} {ours['mteb_lite/average']:11.5f} "
          f"{ours['mteb_lite/average'] - average:+11.5f}")
    print(f"wall time: mteb {mteb_s:.0f} s, embedbench {ours_s:.0f} s ({ours_s / mteb_s:.2f}x)")


if __name__ == "__main__":
    main()
