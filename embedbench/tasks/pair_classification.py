"""Pair classification with mteb's protocol: average precision of each pair's similarity against
its 0/1 label, for cosine, dot, Euclidean and Manhattan; the main score ``ap`` is the best of them
(mteb's ``max_ap``), and ``cosine_ap`` is reported beside it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score
from sklearn.metrics.pairwise import paired_cosine_distances, paired_euclidean_distances, paired_manhattan_distances

from embedbench.data.files import data_file
from embedbench.data.tables import LabelledPairs, read_labelled_pairs
from embedbench.views import ViewSet, cut


def similarities(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Higher means more alike for every entry (distances are negated)."""
    return {"cosine": 1 - paired_cosine_distances(a, b), "dot": (a * b).sum(-1),
            "euclidean": -paired_euclidean_distances(a, b), "manhattan": -paired_manhattan_distances(a, b)}


@dataclass
class PairClassificationTask:
    name: str
    pairs: LabelledPairs
    main_metric = "ap"

    @classmethod
    def from_config(cls, name, task_cfg, cfg):
        path = data_file(task_cfg.path, f"eval.tasks.{name}.path")
        pairs = read_labelled_pairs(path, task_cfg.get("text1_column", "sentence1"),
                                    task_cfg.get("text2_column", "sentence2"), task_cfg.get("label_column", "label"))
        return cls(name, pairs)

    def evaluate(self, embed, views: ViewSet) -> dict[str, float]:
        n = len(self.pairs.labels)
        pooled = embed(self.pairs.sentences1 + self.pairs.sentences2, f"{self.name}: {n} pairs")
        out = {}
        for view in views.views:
            emb = cut(pooled[view.layer], view.dim).numpy()
            ap = {kind: average_precision_score(self.pairs.labels, sim)
                  for kind, sim in similarities(emb[:n], emb[n:]).items()}
            suffix = views.name(view)
            out[f"{self.name}/ap{suffix}"] = float(max(ap.values()))
            out[f"{self.name}/cosine_ap{suffix}"] = float(ap["cosine"])
        return out
