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

from embedbench.config import ClusteringTaskConfig
from embedbench.data.tables import LabelledTexts
from embedbench.embedding.prompts import CLUSTERING
from embedbench.tasks.base import ScoredModel, TaskBase


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
class ClusteringTask(TaskBase):
    data: LabelledTexts
    rounds: int = 10
    round_size: int = 16384
    kmeans_batch_size: int = 512
    seed: int = 42
    main_metric = "v_measure"

    @classmethod
    def load(cls, spec: ClusteringTaskConfig, data: LabelledTexts) -> ClusteringTask:
        """The task over ``data`` (its texts and labels), sampled as ``spec.sample`` says."""
        return cls(spec.name, stratified_sample(data, spec.sample, spec.seed), spec.rounds, spec.round_size,
                   spec.kmeans_batch_size, spec.seed, instruction=spec.instruction)

    def evaluate(self, model: ScoredModel) -> dict[str, float]:
        labels = np.array(self.data.labels)
        texts = model.prompt(self.data.texts, CLUSTERING, self.instruction)
        pooled = model.embed(texts, f"{self.name}: {len(labels)} texts")
        draws = random.Random(self.seed)
        rounds = [draws.choices(range(len(labels)), k=self.round_size) for _ in range(self.rounds)]
        kmeans = MiniBatchKMeans(n_clusters=len(set(self.data.labels)), batch_size=self.kmeans_batch_size,
                                 init="k-means++", n_init=1, random_state=self.seed)
        out = {}
        for view in model.views.views:
            emb = model.views.features(pooled, view).numpy()
            scores = [v_measure_score(labels[idx], kmeans.fit_predict(emb[idx])) for idx in rounds]
            out[f"{self.name}/v_measure{model.views.name(view)}"] = float(np.mean(scores))
        return out
