"""Prompts: by side, with a task's instruction through the template, the model's own where the config leaves
them open, on the trainer's columns; scored retrieval with prompts equal to mteb's with the same prompts."""
import pytest

from embedbench import mteb_reference
from embedbench.config import ModelConfig, PromptsConfig
from embedbench.data.beir import load_beir, subsample
from embedbench.embedding.encoder import LayerEncoder, load_model
from embedbench.embedding.prompts import (
    DOCUMENT,
    QUERY,
    SYMMETRIC,
    Prompts,
    resolve_prompts,
    saved_prompts,
    shipped_prompts,
    training_prompts,
)
from embedbench.errors import EmbedbenchError
from embedbench.models import EncoderModel
from embedbench.tasks.retrieval import RetrievalTask
from tests.helpers import SCIFACT, needs_data, scored

E5 = Prompts("query: ", "passage: ", "query: ", "Instruct: {instruction}\nQuery: {text}")


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
    assert shipped_prompts(model) == ("q: ", "p: ", "q: ")
    assert resolve_prompts(model, PromptsConfig(), None) == Prompts("q: ", "p: ", "q: ")
    assert resolve_prompts(model, PromptsConfig(query="", document="doc: "), None) == Prompts("", "doc: ", "")
    assert resolve_prompts(model, PromptsConfig(symmetric=""), None) == Prompts("q: ", "p: ", "")
    single = SentenceTransformer(modules=list(tiny_model), prompts={"retrieval": "r: "},
                                 default_prompt_name="retrieval", device="cpu")
    assert shipped_prompts(single) == ("r: ", "r: ", "r: ")
    assert shipped_prompts(tiny_model) == ("", "", "")


def test_prompts_saved_with_a_trained_model_read_back_the_same(tiny_model):
    from sentence_transformers import SentenceTransformer

    for trained in (Prompts("q: ", "p: ", "q: "), Prompts("instruction: ", "", "")):
        model = SentenceTransformer(modules=list(tiny_model), device="cpu")
        model.prompts = saved_prompts(model, trained)
        assert resolve_prompts(model, PromptsConfig(), None) == trained


def test_a_pooling_that_leaves_prompt_tokens_out_is_refused_while_a_prompt_applies(tiny_model):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling

    model = SentenceTransformer(modules=[tiny_model[0], Pooling(32, "mean", include_prompt=False)], device="cpu")
    with pytest.raises(EmbedbenchError, match="include_prompt=false"):
        resolve_prompts(model, PromptsConfig(query="query: "), None)
    assert resolve_prompts(model, PromptsConfig(), None) == Prompts()  # no prompt: nothing to leave out


def test_the_trainer_prompts_anchors_as_queries_and_the_rest_as_documents():
    assert training_prompts(E5, ["anchor", "positive", "negative_1", "label"]) == {
        "anchor": "query: ", "positive": "passage: ", "negative_1": "passage: "}
    assert training_prompts(E5, ["sentence1", "sentence2", "label"]) == {"sentence1": "query: ",
                                                                         "sentence2": "query: "}
    assert training_prompts(Prompts("q: ", "", "s: "), ["sentence1", "sentence2"]) == {"sentence1": "s: ",
                                                                                       "sentence2": "s: "}
    assert training_prompts(Prompts("q: "), ["anchor", "positive"]) == {"anchor": "q: "}


@needs_data
def test_retrieval_with_prompts_equals_mteb_with_the_model_s_prompts(encoder):
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 20, 200, seed=3)
    prompted = load_model("default", "cpu")
    prompted.prompts = {"query": "query: ", "document": "passage: "}
    reference = mteb_reference.scores(prompted, mteb_reference.retrieval_task(ds))
    plain = scored(encoder)
    model = EncoderModel(plain.embedder, plain.views, resolve_prompts(prompted, PromptsConfig(), None))
    ours = RetrievalTask("scifact", ds, ["ndcg_at_10", "mrr_at_10"]).evaluate(model)
    unprompted = RetrievalTask("scifact", ds, ["ndcg_at_10"]).evaluate(plain)
    assert ours["scifact/ndcg_at_10"] == pytest.approx(reference["ndcg_at_10"], abs=5e-5)
    assert ours["scifact/mrr_at_10"] == pytest.approx(reference["mrr_at_10"], abs=5e-5)
    assert abs(ours["scifact/ndcg_at_10"] - unprompted["scifact/ndcg_at_10"]) > 1e-4  # the prompts took effect
    assert LayerEncoder(prompted).model.prompts["query"] == "query: "
