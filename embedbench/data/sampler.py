"""TAS-Balanced batches (Hofstätter et al., 2021): each batch is drawn from one cluster of topically
similar queries, and within it rows are taken round-robin over teacher-margin bins, so easy and
hard pairs are equally represented. Plugs into sentence-transformers' trainer as its batch sampler.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import faiss
import numpy as np
from sentence_transformers.base.sampler import DefaultBatchSampler

from embedbench.config import DataConfig
from embedbench.errors import EmbedbenchError


def query_clusters(embeddings: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """FAISS k-means over (normalised) query embeddings: the cluster id of each row."""
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    n_clusters = max(1, min(int(n_clusters), len(x)))
    kmeans = faiss.Kmeans(x.shape[1], n_clusters, niter=20, seed=seed, spherical=True, verbose=False,
                          min_points_per_centroid=1)
    kmeans.train(x)
    return kmeans.index.search(x, 1)[1][:, 0]


def margin_bins(margins: np.ndarray | None, n: int, bins: int) -> np.ndarray:
    """Equal-width bins of the teacher margin (positive - negative score); one bin without a teacher."""
    if margins is None or bins < 2:
        return np.zeros(n, dtype=np.int64)
    edges = np.linspace(margins.min(), margins.max(), bins + 1)[1:-1]
    return np.digitize(margins, edges)


class TasBalancedBatchSampler(DefaultBatchSampler):
    def __init__(self, dataset, batch_size: int, drop_last: bool, clusters: np.ndarray, bins: np.ndarray,
                 valid_label_columns=None, generator=None, seed: int = 0):
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed)
        self.clusters, self.bins = np.asarray(clusters), np.asarray(bins)

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng(self.seed + self.epoch)
        batches = []
        for cluster in rng.permutation(np.unique(self.clusters)):
            members = np.flatnonzero(self.clusters == cluster)
            pools = [list(rng.permutation(members[self.bins[members] == b])) for b in np.unique(self.bins[members])]
            order = []
            while any(pools):  # round-robin over margin bins, in a random bin order each round
                for i in rng.permutation(len(pools)):
                    if pools[i]:
                        order.append(int(pools[i].pop()))
            batches += [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self):
        yield from self.batches()

    def __len__(self) -> int:
        return len(self.batches())


def batch_sampler(data: DataConfig, dataset, embed: Callable, seed: int):
    """What the trainer draws batches with: sentence-transformers' no-duplicates sampler (a repeated
    text in a batch would be a false negative), or TAS-Balanced batches (the training queries clustered
    by ``embed``, an :class:`~embedbench.embedding.embedder.Embedder` of one layer)."""
    if data.sampler in (None, "same_source"):
        return "no_duplicates"  # within each source, when they are kept apart
    if data.sources:
        raise EmbedbenchError("data.sampler=tas_balanced balances one training set; data.sources has "
                              f"{len(data.sources)}")
    (layer,) = embed.layers
    queries = embed(list(dataset["anchor"]), "tas-b: clustering queries")[layer].numpy()
    settings = data.tas_balanced
    clusters = query_clusters(queries, settings.clusters, seed)
    labels = dataset["label"] if "label" in dataset.column_names else None
    margins = np.array([row[0] - max(row[1:]) for row in labels]) if labels and isinstance(labels[0], list) else None
    return partial(TasBalancedBatchSampler, clusters=clusters, bins=margin_bins(margins, len(dataset), settings.bins))
