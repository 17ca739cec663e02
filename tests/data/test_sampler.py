"""TAS-Balanced batches: one query cluster per batch, round-robin over teacher-margin bins."""
import numpy as np

from embedbench.data.sampler import TasBalancedBatchSampler, margin_bins, query_clusters


def test_tas_balanced_batches_come_from_one_cluster_and_spread_over_margin_bins():
    from datasets import Dataset

    margins = np.random.default_rng(0).normal(size=200)
    assert set(margin_bins(margins, 200, 4)) == {0, 1, 2, 3} and set(margin_bins(None, 200, 4)) == {0}
    ids = np.arange(200)
    clusters, bins = ids % 5, (ids // 5) % 4  # 5 clusters of 40 rows, 10 in each margin bin
    sampler = TasBalancedBatchSampler(Dataset.from_dict({"anchor": [str(i) for i in ids]}), 8, False,
                                      clusters, bins, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(200))  # every row once per epoch
    assert len(batches) == len(sampler) == 25
    for batch in batches:
        assert len(set(clusters[batch])) == 1
        assert np.bincount(bins[batch], minlength=4).tolist() == [2, 2, 2, 2]  # round-robin over the bins
    sampler.set_epoch(1)
    assert list(sampler) != batches  # a new order each epoch


def test_query_clusters_follow_topics(encoder):
    texts = ["insulin resistance in obese patients", "type 2 diabetes and insulin", "glucose and insulin levels",
             "galaxy formation in the early universe", "dark matter halos of galaxies", "stars forming in galaxies"]
    clusters = query_clusters(encoder.encode(texts, [6], 8)[6].numpy(), 2, seed=0)
    assert len(set(clusters[:3])) == 1 and len(set(clusters[3:])) == 1 and clusters[0] != clusters[3]
