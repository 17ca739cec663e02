"""Retrieval by shards (``eval.shard_docs``): the same top-k as searching the whole collection at once, for
every view and the compatibility variants, with no embedding call larger than a shard."""
import json

import numpy as np
import pytest
import torch

from embedbench.embedding.views import View, ViewSet
from embedbench.errors import EmbedbenchError
from embedbench.retrieval.dense import DenseRetriever
from tests.helpers import run_main

VIEWS = ViewSet((View(2, 16), View(2, 4), View(1, 16)), n_layers=2, hidden_size=16)


class VectorSource:
    """Fixed embeddings per text (seeded by the text) for layers 1 and 2; records each call's size."""

    def __init__(self, seed: int):
        self.seed, self.calls = seed, []

    def __call__(self, texts: list[str], desc: str) -> dict[int, torch.Tensor]:
        self.calls.append(len(texts))
        rows = [np.random.default_rng([self.seed, *map(ord, text)]).standard_normal(32) for text in texts]
        table = torch.tensor(np.array(rows), dtype=torch.float32)
        return {1: table[:, :16], 2: table[:, 16:]}


def test_shards_find_what_the_whole_collection_finds():
    queries, docs = [f"query {i}" for i in range(9)], [f"document {i}" for i in range(103)]
    whole = DenseRetriever(VectorSource(0), VIEWS, reference=VectorSource(1)).retrieve(queries, docs, 10, "all")
    source, reference = VectorSource(0), VectorSource(1)
    sharded = DenseRetriever(source, VIEWS, reference=reference, shard_docs=20).retrieve(queries, docs, 10, "shards")
    assert set(sharded) == set(whole) and len(whole) == 9  # 3 views x (own, compat, reference)
    for name, found in whole.items():
        assert np.array_equal(sharded[name].ids, found.ids), name
        assert np.allclose(sharded[name].scores, found.scores, atol=1e-6), name
    assert max(source.calls) == max(reference.calls) == 20 and sum(source.calls) == 9 + 103


def test_sharded_scoring_refuses_indexes_with_one_line():
    from embedbench.config import IndexConfig

    retriever = DenseRetriever(VectorSource(0), VIEWS, indexes=[IndexConfig(name="hnsw")], shard_docs=5)
    with pytest.raises(EmbedbenchError, match="eval.shard_docs: index= builds its indexes over the whole"):
        retriever.retrieve(["q"], [f"d{i}" for i in range(12)], 10, "x")


def test_an_eval_by_shards_scores_as_the_whole_corpus(tmp_path, scifact_slice, tiny_model_path):
    common = [f"model.name_or_path={tiny_model_path}", f"data.root={scifact_slice}", "eval=beir", "model=mrl",
              "model.views.dims=[32,8]", "model.views.weights=[1,1]", "eval.cache=false"]
    run_main("eval", *common, "hydra.run.dir=whole", cwd=tmp_path)
    run_main("eval", *common, "eval.shard_docs=40", "hydra.run.dir=shards", cwd=tmp_path)
    whole, sharded = (json.loads((tmp_path / run / "results.json").read_text())["metrics"]
                      for run in ("whole", "shards"))
    quality = [key for key in whole if "ndcg" in key or "recall_at" in key or "map" in key]
    assert len(quality) == 6 and all(sharded[key] == pytest.approx(whole[key], abs=1e-6) for key in quality)
