"""The mteb adapter: real mteb tasks scored for every view from one encoding; offline, a clear error."""
import pytest

from embedbench import mteb_reference
from embedbench.config import ViewsConfig
from embedbench.data.beir import load_beir, subsample
from embedbench.data.tables import ScoredPairs, read_sts_benchmark
from embedbench.embedding.prompts import Prompts
from embedbench.embedding.views import build_views
from embedbench.errors import EmbedbenchError
from embedbench.models import EncoderModel
from embedbench.tasks.mteb_tasks import MtebTasks
from embedbench.tasks.sts import STSTask
from tests.helpers import DATA, SCIFACT, needs_data, scored


class Counting:
    """A scored model that counts the texts it is asked to embed."""

    def __init__(self, model):
        self.model, self.views, self.calls, self.texts = model, model.views, [], []

    def prompt(self, texts, side, instruction=None):
        return self.model.prompt(texts, side, instruction)

    def embed(self, texts, desc):
        self.calls.append(len(texts))
        self.texts.append(texts)
        return self.model.embed(texts, desc)


@needs_data
def test_mteb_adapter_scores_every_view_from_one_encoding(encoder):
    full = read_sts_benchmark(DATA / "sts" / "stsbenchmark" / "sts-test.csv")
    pairs = ScoredPairs(full.sentences1[:120], full.sentences2[:120], full.scores[:120])
    views = build_views(ViewsConfig(dims=[384, 64]), encoder.n_layers, encoder.hidden_size)
    model = Counting(scored(encoder, views))
    adapter = MtebTasks([mteb_reference.sts_task(pairs)])
    ours = adapter.evaluate(model)
    direct = STSTask("stsb", pairs).evaluate(scored(encoder, views))
    assert ours["LocalAbsTaskSTS/main_score"] == pytest.approx(direct["stsb/spearman"], abs=1e-4)
    assert ours["LocalAbsTaskSTS/main_score/d64"] == pytest.approx(direct["stsb/spearman/d64"], abs=1e-4)
    assert adapter.main_scores == {"LocalAbsTaskSTS": "main_score"}
    assert model.calls == [120, 120]  # sentence1 and sentence2 lists, encoded for the first view only


@needs_data
def test_mteb_adapter_prompts_each_side_as_mteb_names_it(encoder):
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 4, 30, seed=1)
    plain = scored(encoder)
    model = Counting(EncoderModel(plain.embedder, plain.views, Prompts("q: ", "d: ", "s: ")))
    MtebTasks([mteb_reference.retrieval_task(ds)]).evaluate(model)
    assert {texts[0][:3] for texts in model.texts} == {"q: ", "d: "}
    assert all(text.startswith(texts[0][:3]) for texts in model.texts for text in texts)
    pairs = read_sts_benchmark(DATA / "sts" / "stsbenchmark" / "sts-test.csv")
    MtebTasks([mteb_reference.sts_task(ScoredPairs(pairs.sentences1[:5], pairs.sentences2[:5], pairs.scores[:5]))]
              ).evaluate(model)
    assert all(text.startswith("s: ") for texts in model.texts[-2:] for text in texts)


def test_mteb_adapter_offline_is_a_clear_error(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(EmbedbenchError, match=r"eval=mteb: tasks \['STSBenchmark'\] .* offline"):
        MtebTasks.from_names(["STSBenchmark"])
