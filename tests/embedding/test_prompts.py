"""Prompts: by side, with a task's instruction through the template, the model's own where the config leaves
them open, on the trainer's columns; scored retrieval with prompts equal to mteb's with the same prompts."""
import copy

import pytest
import torch

from embedbench import mteb_reference
from embedbench.config import ModelConfig, PromptsConfig
from embedbench.data.beir import load_beir, subsample
from embedbench.embedding.encoder import LayerEncoder, load_model
from embedbench.embedding.prompts import (
    DOCUMENT,
    QUERY,
    RERANKING_DOCUMENT,
    RERANKING_QUERY,
    RETRIEVAL_DOCUMENT,
    RETRIEVAL_QUERY,
    SYMMETRIC,
    Prompts,
    keep_prompts,
    resolve_prompts,
    shipped_prompts,
    training_prompts,
)
from embedbench.errors import EmbedbenchError
from embedbench.models import EncoderModel
from embedbench.tasks.reranking import RerankingTask
from embedbench.tasks.retrieval import RetrievalTask
from tests.helpers import SCIFACT, needs_data, scored

E5 = Prompts("query: ", "passage: ", "query: ", "Instruct: {instruction}\nQuery: {text}")
# EmbeddingGemma's prompts for retrieval and reranking: mteb gives reranking's documents the "Reranking" prompt
GEMMA = {"query": "task: search result | query: ", "document": "title: none | text: ",
         "Retrieval-query": "task: search result | query: ", "Retrieval-document": "title: none | text: ",
         "Reranking": "task: search result | query: "}


def test_each_side_gets_its_prompt_and_an_instruction_goes_through_the_template():
    assert E5.apply(["a", "b"], QUERY) == ["query: a", "query: b"]
    assert E5.apply(["a"], DOCUMENT) == ["passage: a"]
    assert E5.apply(["a"], QUERY, "Find the claim's evidence") == ["Instruct: Find the claim's evidence\nQuery: a"]
    assert E5.apply(["a"], DOCUMENT, "Find the claim's evidence") == ["passage: a"]  # documents: never
    assert E5.apply(["a"], SYMMETRIC) == ["query: a"]
    assert E5.apply(["a"], SYMMETRIC, "Retrieve semantically similar text") == [
        "Instruct: Retrieve semantically similar text\nQuery: a"]
    assert Prompts("q: ").apply(["a"], QUERY, "ignored without a template") == ["q: a"]
    assert Prompts().apply(["a {text}"], QUERY) == ["a {text}"]


@pytest.mark.parametrize("template", ["{text}: {instruction}", "Query: {text}", "{instruction} {text} {text}",
                                      "{instruction} {query}", "Instruct: {instruction}\\nQuery: {text}"])
def test_a_template_needs_the_instruction_and_ends_with_the_text(template):
    with pytest.raises(EmbedbenchError, match="model.prompt_template"):
        ModelConfig(name="m", prompt_template=template)


def test_the_model_s_own_prompts_fill_what_the_config_leaves_open(tiny_model):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(modules=list(tiny_model), prompts={"query": "q: ", "passage": "p: "}, device="cpu")
    assert shipped_prompts(model) == ("q: ", "p: ", "q: ", ())
    assert resolve_prompts(model, PromptsConfig(), None) == Prompts("q: ", "p: ", "q: ")
    assert resolve_prompts(model, PromptsConfig(query="", document="doc: "), None) == Prompts("", "doc: ", "")
    assert resolve_prompts(model, PromptsConfig(symmetric=""), None) == Prompts("q: ", "p: ", "")
    single = SentenceTransformer(modules=list(tiny_model), prompts={"retrieval": "r: "},
                                 default_prompt_name="retrieval", device="cpu")
    assert shipped_prompts(single) == ("r: ", "r: ", "r: ", ())
    assert shipped_prompts(tiny_model) == ("", "", "", ())


def test_prompts_saved_with_a_trained_model_read_back_the_same(tiny_model, tmp_path):
    template = "Instruct: {instruction}\nQuery: {text}"
    for n, trained in enumerate((Prompts("q: ", "p: ", "q: "), Prompts("instruction: ", "", ""),
                                 Prompts("", "", "", template))):
        model = copy.deepcopy(tiny_model)
        keep_prompts(model, trained)
        model.save(str(tmp_path / str(n)))
        loaded = load_model(str(tmp_path / str(n)), "cpu")
        assert resolve_prompts(loaded, PromptsConfig(), None) == trained
    assert resolve_prompts(loaded, PromptsConfig(), "Q: {instruction} {text}").template == "Q: {instruction} {text}"


@pytest.fixture(scope="module")
def instructor_style():
    """MiniLM whose pooling leaves prompt tokens out (``include_prompt=false``, as INSTRUCTOR models ship),
    with a prompt per side."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize
    from sentence_transformers.sentence_transformer.modules import Pooling

    minilm = load_model("default", "cpu")
    model = SentenceTransformer(modules=[minilm[0], Pooling(384, "mean", include_prompt=False), Normalize()],
                                device="cpu")
    model.prompts = {"query": "Represent the scientific question for retrieving evidence: ",
                     "document": "Represent the scientific paper: "}
    return model, LayerEncoder(model)


def test_a_symmetric_task_type_takes_the_prompt_the_model_ships_for_it(tiny_model):
    from sentence_transformers import SentenceTransformer

    from embedbench.embedding.prompts import CLASSIFICATION, CLUSTERING, PAIR_CLASSIFICATION, STS

    # nomic-embed's prompts: one per kind of task, the task types in lower case
    nomic = {"query": "search_query: ", "document": "search_document: ", "classification": "classification: ",
             "clustering": "clustering: "}
    model = SentenceTransformer(modules=list(tiny_model), prompts=nomic, device="cpu")
    prompts = resolve_prompts(model, PromptsConfig(), None)
    assert [prompts.prefix(side) for side in (QUERY, DOCUMENT, STS, CLASSIFICATION, CLUSTERING,
                                              PAIR_CLASSIFICATION)] == [
        "search_query: ", "search_document: ", "search_query: ", "classification: ", "clustering: ", "search_query: "]
    assert prompts.params()["prompts.Clustering"] == "clustering: "
    # a symmetric prompt in the config is every symmetric task's
    override = resolve_prompts(model, PromptsConfig(symmetric=""), None)
    assert [override.prefix(side) for side in (STS, CLASSIFICATION, CLUSTERING)] == ["", "", ""]
    # saved with a trained model: the typed prompts stay, under mteb's names
    saved, overridden = (SentenceTransformer(modules=list(tiny_model), prompts=nomic, device="cpu") for _ in "ab")
    keep_prompts(saved, prompts)
    keep_prompts(overridden, override)
    assert (saved.prompts["Classification"], saved.prompts["Clustering"], saved.prompts["query"]) == (
        "classification: ", "clustering: ", "search_query: ")
    assert overridden.prompts["Classification"] == ""


def test_a_retrieval_or_reranking_side_takes_the_prompt_mteb_reads_for_it(tiny_model):
    from sentence_transformers import SentenceTransformer

    sides = (QUERY, DOCUMENT, RETRIEVAL_QUERY, RETRIEVAL_DOCUMENT, RERANKING_QUERY, RERANKING_DOCUMENT)
    search, text = GEMMA["query"], GEMMA["document"]
    model = SentenceTransformer(modules=list(tiny_model), prompts=GEMMA, device="cpu")
    prompts = resolve_prompts(model, PromptsConfig(), None)
    assert [prompts.prefix(side) for side in sides] == [search, text, search, text, search, search]
    assert prompts.params()["prompts.Reranking-document"] == search
    # a side set in the config is that side's in every task; saved, the model reads back what was scored
    override = resolve_prompts(model, PromptsConfig(document="passage: "), None)
    assert [override.prefix(side) for side in sides] == [search, "passage: ", search, "passage: ", search,
                                                          "passage: "]
    keep_prompts(model, override)
    assert model.prompts["Reranking-document"] == "passage: " and model.prompts["Reranking"] == search
    assert resolve_prompts(model, PromptsConfig(), None) == override


@needs_data
def test_reranking_with_a_reranking_prompt_equals_mteb(encoder):
    import random

    ds = subsample(load_beir("scifact", SCIFACT, "test"), 20, 120, seed=3)
    rng, docs = random.Random(3), sorted(ds.corpus)
    candidates = {qid: list(judged) + rng.sample([d for d in docs if d not in judged], 12)
                  for qid, judged in ds.qrels.items()}
    prompted = load_model("default", "cpu")
    prompted.prompts = dict(GEMMA)
    reference = mteb_reference.scores(prompted, mteb_reference.retrieval_task(ds, candidates))
    plain = scored(encoder)
    model = EncoderModel(plain.embedder, plain.views, resolve_prompts(prompted, PromptsConfig(), None))
    ours = RerankingTask("rerank", ds, candidates, ["map_at_1000", "mrr_at_10"]).evaluate(model)
    assert ours["rerank/map_at_1000"] == pytest.approx(reference["map_at_1000"], abs=5e-5)
    assert ours["rerank/mrr_at_10"] == pytest.approx(reference["mrr_at_10"], abs=5e-5)


@needs_data
def test_classification_with_the_model_s_classification_prompt_equals_mteb(encoder):
    from embedbench.data.tables import read_labelled
    from embedbench.tasks.classification import ClassificationTask, label_ids
    from tests.helpers import DATA

    banking = DATA / "classification" / "banking77"
    train, test = (read_labelled(banking / f"{split}.csv", "text", "category") for split in ("train", "test"))
    keep = set(sorted(set(train.labels))[:12])
    train, test = [type(t)([x for x, y in zip(t.texts, t.labels) if y in keep], [y for y in t.labels if y in keep])
                   for t in (train, test)]
    prompted = load_model("default", "cpu")
    prompted.prompts = {"query": "query: ", "Classification": "Classify the intent of the banking question: "}
    reference = mteb_reference.scores(prompted, mteb_reference.classification_task(train, test,
                                                                                   label_ids(train, test)))
    plain = scored(encoder)
    task = ClassificationTask("banking77", train, test)
    ours = task.evaluate(EncoderModel(plain.embedder, plain.views, resolve_prompts(prompted, PromptsConfig(), None)))
    query_prompt = task.evaluate(EncoderModel(plain.embedder, plain.views, Prompts("query: ", "", "query: ")))
    assert ours["banking77/accuracy"] == pytest.approx(reference["accuracy"], abs=2e-3)
    # the symmetric (here the query) prompt, which classification took before, scores otherwise
    assert abs(query_prompt["banking77/accuracy"] - reference["accuracy"]) > 2e-3


def test_a_pooling_that_leaves_prompt_tokens_out_encodes_as_sentence_transformers_does(instructor_style):
    import torch.nn.functional as F

    model, encoder = instructor_style
    prompts = resolve_prompts(model, PromptsConfig(), None)
    assert not prompts.pooled and prompts.params()["prompts.pooled"] == "false"
    queries = ["What causes tides?", "Do statins lower cholesterol in adults over sixty?"]
    docs = ["Tides are caused by the gravitational pull of the moon.", "Statins inhibit HMG-CoA reductase.", "x"]
    texts = prompts.apply(queries, QUERY) + prompts.apply(docs, DOCUMENT) + ["no prompt at all"]
    expected = torch.cat([model.encode(queries, prompt_name="query", convert_to_tensor=True),
                          model.encode(docs, prompt_name="document", convert_to_tensor=True),
                          model.encode(["no prompt at all"], convert_to_tensor=True)])
    for precision, backend, min_cos in (("fp32", "torch", 0.99999), ("bf16", "openvino", 0.999)):
        # batches of 2 mix prompts of different lengths; one pass over all
        out = encoder.encode(texts, [6], batch_size=2, precision=precision, backend=backend)[6]
        assert F.cosine_similarity(out, expected).min() > min_cos, backend
    pooled_whole = LayerEncoder(load_model("default", "cpu")).encode([str(t) for t in texts], [6])[6]
    assert F.cosine_similarity(pooled_whole, expected)[:5].max() < 0.999  # the prompt's tokens really left out
    # training: the trainer's collator gives one prompt length per column's batch
    features = model.preprocess(queries, prompt=model.prompts["query"])
    assert isinstance(features["prompt_length"], int)
    trained_path = encoder.pooled(features, [6], through=model)[6]
    assert F.cosine_similarity(trained_path, expected[:2]).min() > 0.99999


def test_a_prompted_text_keeps_its_prompt_through_pickling_and_in_the_cache_key():
    import pickle

    from embedbench.embedding.cache import texts_fingerprint
    from embedbench.embedding.prompts import Prompted

    text = Prompted("query: ", "a b")
    copy = pickle.loads(pickle.dumps([text]))[0]  # device workers and other ranks receive it so
    assert (copy, copy.prompt) == ("query: a b", "query: ") and isinstance(copy, Prompted)
    assert texts_fingerprint([text]) != texts_fingerprint(["query: a b"])
    assert texts_fingerprint([text]) != texts_fingerprint([Prompted("query: a ", "b")])
    assert texts_fingerprint(["query: a b"]) == texts_fingerprint([str(text)])


def test_chunking_is_refused_for_texts_whose_prompt_is_left_out_of_pooling(instructor_style):
    from embedbench.config import EncodeConfig
    from embedbench.embedding.embedder import Embedder
    from embedbench.embedding.prompts import Prompted

    model, _ = instructor_style
    embed = Embedder(LayerEncoder(model, options={"long": "chunk"}), [6], EncodeConfig(precision="fp32"))
    with pytest.raises(EmbedbenchError, match="model.long=chunk: the model's pooling leaves prompt tokens out"):
        embed([Prompted("query: ", "a text")], "x")


def test_the_trainer_prompts_anchors_as_queries_and_the_rest_as_documents():
    assert training_prompts(E5, ["anchor", "positive", "negative_1", "label"]) == {
        "anchor": "query: ", "positive": "passage: ", "negative_1": "passage: "}
    assert training_prompts(E5, ["sentence1", "sentence2", "label"]) == {"sentence1": "query: ",
                                                                         "sentence2": "query: "}
    assert training_prompts(Prompts("q: ", "", "s: "), ["sentence1", "sentence2"]) == {"sentence1": "s: ",
                                                                                       "sentence2": "s: "}
    assert training_prompts(Prompts("q: "), ["anchor", "positive"]) == {"anchor": "q: "}


@needs_data
def test_retrieval_with_prompts_equals_mteb_with_the_model_s_prompts(encoder, embeddings):
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 20, 120, seed=3)
    prompted = load_model("default", "cpu")
    prompted.prompts = {"query": "query: ", "document": "passage: "}
    reference = mteb_reference.scores(prompted, mteb_reference.retrieval_task(ds))
    plain = scored(encoder, cache=embeddings)
    model = EncoderModel(plain.embedder, plain.views, resolve_prompts(prompted, PromptsConfig(), None))
    ours = RetrievalTask("scifact", ds, ["ndcg_at_10", "mrr_at_10"]).evaluate(model)
    unprompted = RetrievalTask("scifact", ds, ["ndcg_at_10"]).evaluate(plain)  # read back if already encoded
    assert ours["scifact/ndcg_at_10"] == pytest.approx(reference["ndcg_at_10"], abs=5e-5)
    assert ours["scifact/mrr_at_10"] == pytest.approx(reference["mrr_at_10"], abs=5e-5)
    assert abs(ours["scifact/ndcg_at_10"] - unprompted["scifact/ndcg_at_10"]) > 1e-4  # the prompts took effect
    assert LayerEncoder(prompted).model.prompts["query"] == "query: "


@needs_data
def test_retrieval_leaving_prompt_tokens_out_equals_mteb(instructor_style):
    model, encoder = instructor_style
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 20, 120, seed=3)
    reference = mteb_reference.scores(model, mteb_reference.retrieval_task(ds))
    plain = scored(encoder)
    ours = RetrievalTask("scifact", ds, ["ndcg_at_10", "mrr_at_10"]).evaluate(
        EncoderModel(plain.embedder, plain.views, resolve_prompts(model, PromptsConfig(), None)))
    assert ours["scifact/ndcg_at_10"] == pytest.approx(reference["ndcg_at_10"], abs=5e-5)
    assert ours["scifact/mrr_at_10"] == pytest.approx(reference["mrr_at_10"], abs=5e-5)
