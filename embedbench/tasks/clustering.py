"""Clustering with mteb's fast protocol (AbsTaskClustering, as StackExchangeClustering.v2 runs it).

A label-stratified sample of ``sample`` texts (the same draw as mteb's ``stratified_subsampling``,
which is a Hugging Face ``train_test_split``), then ``rounds`` bootstrap draws of ``round_size``
texts with replacement, each clustered by mini-batch k-means into as many clusters as labels;
the score is the mean V-measure. Every view gets the same draws.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sklearn.metrics.cluster import v_measure_score

from embedbench.data.files import data_file
from embedbench.data.tables import LabelledTexts, read_labelled, read_line_aligned
from embedbench.errors import EmbedbenchError
from embedbench.views import ViewSet, cut


def stratified_sample(data: LabelledTexts, size: int | None, seed: int) -> LabelledTexts:
    if not size or size >= len(data.texts):
        return data
    from datasets import ClassLabel, Dataset, disable_progress_bars

    disable_progress_bars()  # a sub-second cast; its bars would only clutter the eval's own
    names = sorted(set(data.labels))  # mteb's ClassLabel: names sorted as strings
    table = Dataset.from_dict({"text": data.texts, "label": data.labels})
    table = table.cast_column("label", ClassLabel(names=names))
    picked = table.train_test_split(test_size=size, seed=seed, stratify_by_column="label")["test"]
    return LabelledTexts(picked["text"], [names[i] for i in picked["label"]])


@dataclass
class ClusteringTask:
    name: str
    data: LabelledTexts
    rounds: int = 10
    round_size: int = 16384
    kmeans_batch_size: int = 512
    seed: int = 42
    main_metric = "v_measure"

    @classmethod
    def from_config(cls, name, task_cfg, cfg):
        key = f"eval.tasks.{name}"
        if task_cfg.get("labels"):
            data = read_line_aligned(data_file(task_cfg.texts, f"{key}.texts"),
                                     data_file(task_cfg.labels, f"{key}.labels"))
        elif task_cfg.get("path"):
            data = read_labelled(data_file(task_cfg.path, f"{key}.path"), task_cfg.get("text_column", "text"),
                                 task_cfg.get("label_column", "label"))
        else:
            raise EmbedbenchError(f"{key}: give path (a labelled table) or texts + labels (line-aligned files)")
        seed = int(task_cfg.get("seed", 42))
        return cls(name, stratified_sample(data, task_cfg.get("sample"), seed), int(task_cfg.get("rounds", 10)),
                   int(task_cfg.get("round_size", 16384)), int(task_cfg.get("kmeans_batch_size", 512)), seed)

    def evaluate(self, embed, views: ViewSet) -> dict[str, float]:
        labels = np.array(self.data.labels)
        pooled = embed(self.data.texts, f"{self.name}: {len(labels)} texts")
        draws = random.Random(self.seed)
        rounds = [draws.choices(range(len(labels)), k=self.round_size) for _ in range(self.rounds)]
        kmeans = MiniBatchKMeans(n_clusters=len(set(self.data.labels)), batch_size=self.kmeans_batch_size,
                                 init="k-means++", n_init=1, random_state=self.seed)
        out = {}
        for view in views.views:
            emb = cut(pooled[view.layer], view.dim).numpy()
            scores = [v_measure_score(labels[idx], kmeans.fit_predict(emb[idx])) for idx in rounds]
            out[f"{self.name}/v_measure{views.name(view)}"] = float(np.mean(scores))
        return out
