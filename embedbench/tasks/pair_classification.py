"""Pair classification with mteb's protocol: average precision of each pair's similarity against
its 0/1 label, for cosine, dot, Euclidean and Manhattan; the main score ``ap`` is the best of them
(mteb's ``max_ap``), and ``cosine_ap`` is reported beside it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score
from sklearn.metrics.pairwise import paired_cosine_distances, paired_euclidean_distances, paired_manhattan_distances

from embedbench.data.tables import LabelledPairs
from embedbench.embedding.prompts import PAIR_CLASSIFICATION
from embedbench.tasks.base import ScoredModel, TaskBase


def similarities(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Higher means more alike for every entry (distances are negated)."""
    return {"cosine": 1 - paired_cosine_distances(a, b), "dot": (a * b).sum(-1),
            "euclidean": -paired_euclidean_distances(a, b), "manhattan": -paired_manhattan_distances(a, b)}


@dataclass
class PairClassificationTask(TaskBase):
    pairs: LabelledPairs
    main_metric = "ap"

    def evaluate(self, model: ScoredModel) -> dict[str, float]:
        n = len(self.pairs.labels)
        texts = model.prompt(self.pairs.sentences1 + self.pairs.sentences2, PAIR_CLASSIFICATION, self.instruction)
        pooled = model.embed(texts, f"{self.name}: {n} pairs")
        out = {}
        for view in model.views.views:
            emb = model.views.features(pooled, view).numpy()
            ap = {kind: average_precision_score(self.pairs.labels, sim)
                  for kind, sim in similarities(emb[:n], emb[n:]).items()}
            suffix = model.views.name(view)
            out[f"{self.name}/ap{suffix}"] = float(max(ap.values()))
            out[f"{self.name}/cosine_ap{suffix}"] = float(ap["cosine"])
        return out
