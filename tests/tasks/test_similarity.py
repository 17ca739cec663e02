"""A model that does not normalise its output, or that scores by dot product (DPR, TAS-B, Contriever): scored
as mteb scores it, which takes both from the sentence-transformers model. Classifiers, k-means and pair scores
see the embeddings as the model gives them; retrieval and reranking rank by the model's similarity."""
from dataclasses import replace

import numpy as np
import pytest

from embedbench import mteb_reference
from embedbench.config import IndexConfig, ViewsConfig
from embedbench.data.beir import load_beir, subsample
from embedbench.data.tables import read_labelled, read_line_aligned
from embedbench.embedding.encoder import load_encoder, load_model
from embedbench.errors import EmbedbenchError
from embedbench.retrieval.index import search
from embedbench.tasks.classification import ClassificationTask, label_ids
from embedbench.tasks.clustering import ClusteringTask, stratified_sample
from embedbench.tasks.retrieval import RetrievalTask
from tests.helpers import DATA, SCIFACT, needs_data, scored

METRICS = ["ndcg_at_10", "recall_at_100", "mrr_at_10", "map_at_100"]


def unnormalised(similarity: str, folder):
    """MiniLM without its Normalize module, declaring ``similarity``, saved to ``folder``."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize

    minilm = load_model("default", "cpu")
    model = SentenceTransformer(modules=[m for m in minilm if not isinstance(m, Normalize)], device="cpu",
                                similarity_fn_name=similarity)
    model.save(str(folder))
    return model


@pytest.fixture(scope="module")
def dot_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dot_minilm")
    return unnormalised("dot", folder), load_encoder(str(folder), "cpu")


@needs_data
def test_dot_product_retrieval_equals_mteb_and_differs_from_cosine(dot_model, embeddings):
    model, encoder = dot_model
    assert (encoder.similarity, encoder.unit_length) == ("dot", False)
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 25, 150, seed=7)
    reference = mteb_reference.scores(model, mteb_reference.retrieval_task(ds))
    views = encoder.views(ViewsConfig(dims=[384, 64]))
    ours = RetrievalTask("scifact", ds, METRICS).evaluate(scored(encoder, views, cache=embeddings))
    for metric in METRICS:
        assert ours[f"scifact/{metric}"] == pytest.approx(reference[metric], abs=5e-5), metric
    cosine = RetrievalTask("scifact", ds, METRICS).evaluate(  # the same embeddings, read back
        scored(encoder, replace(views, similarity="cosine"), cache=embeddings))
    assert abs(cosine["scifact/ndcg_at_10"] - ours["scifact/ndcg_at_10"]) > 1e-3  # the two rank differently


@needs_data
def test_unnormalised_embeddings_reach_the_classifier_and_k_means_as_given(dot_model):
    model, encoder = dot_model
    banking = DATA / "classification" / "banking77"
    train, test = read_labelled(banking / "train.csv", "text", "category"), read_labelled(banking / "test.csv",
                                                                                             "text", "category")
    keep = set(sorted(set(train.labels))[:12])
    train, test = [type(t)([x for x, y in zip(t.texts, t.labels) if y in keep], [y for y in t.labels if y in keep])
                   for t in (train, test)]
    reference = mteb_reference.scores(model, mteb_reference.classification_task(train, test, label_ids(train, test)))
    ours = ClassificationTask("banking77", train, test).evaluate(scored(encoder))
    assert ours["banking77/accuracy"] == pytest.approx(reference["accuracy"], abs=2e-3)

    so = DATA / "clustering" / "stackoverflow"
    data = read_line_aligned(so / "StackOverflow.txt", so / "StackOverflow_gnd.txt")
    reference = mteb_reference.scores(model, mteb_reference.clustering_task(data, 400, max_documents_per_cluster=1000))
    ours = ClusteringTask("stackoverflow", stratified_sample(data, 400, 42), round_size=1000).evaluate(scored(encoder))
    assert ours["stackoverflow/v_measure"] == pytest.approx(reference["v_measure"], abs=2e-3)

@pytest.mark.parametrize("similarity, first", [("dot", 1), ("cosine", 0)])
def test_a_funnels_shortlist_scores_the_prefix_by_the_views_similarity(similarity, first):
    # document 1's prefix has the larger inner product with the query, document 0's the larger cosine
    docs = np.array([[0.9, 0.1, 0, 0], [2.0, 2.0, 0, 0]], dtype=np.float32)
    queries = np.array([[1, 0, 0, 0]], dtype=np.float32)
    funnel = IndexConfig(name="funnel", funnel_dim=2, shortlist=1)
    assert search(docs, queries, 1, funnel, similarity).ids[0, 0] == first


def test_model_similarity_setting_overrides_the_models_and_is_saved(tiny_model_path, tmp_path):
    encoder = load_encoder(str(tiny_model_path), "cpu")
    assert (encoder.similarity, encoder.unit_length) == ("cosine", False)
    encoder = load_encoder(str(tiny_model_path), "cpu", similarity="dot")
    assert encoder.views(ViewsConfig()).similarity == "dot"
    encoder.model.save(str(tmp_path / "saved"))
    assert load_encoder(str(tmp_path / "saved"), "cpu").similarity == "dot"
    encoder.model.similarity_fn_name = "manhattan"
    with pytest.raises(EmbedbenchError, match="manhattan similarity.*model.similarity"):
        encoder.views(ViewsConfig())
