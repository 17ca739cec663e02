"""The one-pass, all-layer encoder against sentence-transformers and a direct computation."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedbench.config import ViewsConfig
from embedbench.embedding.views import cut

TEXTS = ["A girl is styling her hair.", "Microstructural development of human newborn cerebral white matter.",
         "short", "A group of men play soccer on the beach while the tide comes in slowly."]


def test_last_layer_equals_sentence_transformers_encode(minilm, encoder):
    reference = minilm.encode(TEXTS, convert_to_tensor=True)
    pooled = encoder.encode(TEXTS, [6], batch_size=3)[6]
    assert torch.allclose(cut(pooled, 384), reference, atol=1e-5)


def test_dim_cut_equals_sentence_transformers_truncate_dim(minilm, encoder):
    reference = F.normalize(minilm.encode(TEXTS, convert_to_tensor=True, truncate_dim=64), dim=-1)
    pooled = encoder.encode(TEXTS, [6])[6]
    assert torch.allclose(cut(pooled, 64), reference, atol=1e-5)


def test_inner_layer_is_masked_mean_of_that_hidden_state(minilm, encoder):
    features = minilm.preprocess(TEXTS)
    with torch.no_grad():
        out = minilm[0].model(input_ids=features["input_ids"], attention_mask=features["attention_mask"],
                              token_type_ids=features["token_type_ids"], output_hidden_states=True)
    mask = features["attention_mask"].unsqueeze(-1).float()
    direct = (out.hidden_states[3] * mask).sum(1) / mask.sum(1)
    pooled = encoder.encode(TEXTS, [3, 6])
    assert torch.allclose(pooled[3], direct, atol=1e-5)
    assert not torch.allclose(pooled[3], pooled[6], atol=1e-2)


def test_encode_returns_rows_in_input_order(encoder):
    forward = encoder.encode(TEXTS, [6], batch_size=2)[6]
    backward = encoder.encode(TEXTS[::-1], [6], batch_size=2)[6]
    assert torch.allclose(forward, backward.flip(0), atol=1e-5)


def test_bf16_encoding_stays_close_to_fp32(encoder):
    fp32 = cut(encoder.encode(TEXTS, [6])[6], 384)
    bf16 = cut(encoder.encode(TEXTS, [6], precision="bf16")[6], 384)
    assert F.cosine_similarity(fp32, bf16).min() > 0.999
    assert not torch.equal(fp32, bf16)  # it really ran in another precision


def test_batches_cover_every_text_once_longest_first_with_a_token_budget(encoder):
    texts = ["word " * n for n in (3, 300, 40, 1, 120, 7)] * 20
    batches = encoder.batches(texts, batch_size=4)
    flat = [int(i) for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(texts)))
    lengths = encoder.token_lengths(texts)
    assert all(lengths[a] >= lengths[b] for a, b in zip(flat, flat[1:]))
    budget = 4 * encoder.model.max_seq_length
    assert all(len(b) <= max(4, budget // lengths[b[0]]) for b in batches)
    assert len(batches[-1]) > 4  # the shortest texts share one big batch



def test_a_projection_head_sets_the_width_and_every_layer_goes_through_it(tiny_model):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling

    from embedbench.embedding.encoder import LayerEncoder

    torch.manual_seed(0)
    model = SentenceTransformer(modules=[tiny_model[0], Pooling(32, "mean"), Dense(32, 12), Normalize()], device="cpu")
    projected = LayerEncoder(model)
    assert projected.hidden_size == 12
    pooled = projected.encode(TEXTS, [1, 2])
    assert pooled[1].shape == pooled[2].shape == (len(TEXTS), 12)
    assert torch.allclose(F.normalize(pooled[2], dim=-1), model.encode(TEXTS, convert_to_tensor=True), atol=1e-5)


def test_a_width_the_model_was_saved_with_is_its_full_width_in_encoding_training_and_the_cache(tmp_path):
    from sentence_transformers import SentenceTransformer

    from embedbench.embedding.cache import model_fingerprint
    from embedbench.embedding.encoder import LayerEncoder, load_encoder, load_model

    model = load_model("default", "cpu")
    model.truncate_dim = 128  # sentence-transformers saves it, and its encode then gives 128 dims
    model.save(str(tmp_path / "saved"))
    encoder, whole = load_encoder(str(tmp_path / "saved"), "cpu"), LayerEncoder(load_model("default", "cpu"))
    assert encoder.hidden_size == 128
    # the 128-dim prefix of the normalised output: not unit length, and classifiers see it as it is (as mteb's do)
    expected = SentenceTransformer(str(tmp_path / "saved"), device="cpu").encode(TEXTS, convert_to_tensor=True)
    assert not encoder.unit_length and float(expected.norm(dim=-1).max()) < 0.99
    views = encoder.views(ViewsConfig(dims=[128, 64]))
    for out in (encoder.encode(TEXTS, [3, 6])[6], encoder.pooled(encoder.model.preprocess(TEXTS), [6])[6],
                encoder.pooled(encoder.model.preprocess(TEXTS), [6], through=encoder.model)[6].detach()):
        torch.testing.assert_close(views.features({6: out}, views.views[0]), expected, rtol=0, atol=1e-5)
    assert model_fingerprint(encoder, "fp32") != model_fingerprint(whole, "fp32")  # same weights, other width


def test_a_long_context_models_batches_hold_the_tokens_of_512_token_texts(encoder, monkeypatch):
    monkeypatch.setattr(encoder.model, "max_seq_length", 8192)
    lengths = np.array([8000, 3000, 5000] + [100] * 50)
    batches = encoder.batches([""] * len(lengths), batch_size=4, lengths=lengths)
    assert [len(b) for b in batches] == [1, 1, 1, 20, 20, 10]  # 4 x 512 tokens each, at least one text


def test_weights_load_in_fp32_whatever_the_checkpoint_holds_unless_asked(tiny_model, tmp_path):
    from embedbench.embedding.encoder import load_model

    copy.deepcopy(tiny_model).to(torch.bfloat16).save(str(tmp_path / "bf16"))  # a bf16 checkpoint
    loaded = {dtype: next(load_model(str(tmp_path / "bf16"), "cpu", dtype=dtype).parameters()).dtype
              for dtype in ("fp32", "bf16", "auto")}
    assert loaded == {"fp32": torch.float32, "bf16": torch.bfloat16, "auto": torch.bfloat16}
    assert next(load_model(str(tmp_path / "bf16"), "cpu").parameters()).dtype == torch.float32  # the default


def sparse_safetensors(path, tensors):
    """A safetensors file whose data is a hole: any size, and it takes no disk."""
    import json
    import math
    import struct

    header, start = {}, 0
    for name, (dtype, shape) in tensors.items():
        end = start + math.prod(shape) * {"BF16": 2, "F32": 4, "I64": 8}[dtype]
        header[name], start = {"dtype": dtype, "shape": shape, "data_offsets": [start, end]}, end
    encoded = json.dumps(header).encode()
    path.parent.mkdir(exist_ok=True)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(encoded)) + encoded)
        fh.truncate(8 + len(encoded) + start)


def test_weights_that_would_not_fit_in_the_memory_left_are_refused_before_loading(tiny_model_path, tmp_path):
    import shutil

    from embedbench.embedding.encoder import load_model
    from embedbench.embedding.sources import loaded_bytes
    from embedbench.errors import EmbedbenchError

    folder = tmp_path / "huge"
    shutil.copytree(tiny_model_path, folder)
    sparse_safetensors(folder / "model.safetensors", {"w": ("BF16", [1000, 10]), "ids": ("I64", [5])})
    sparse_safetensors(folder / "1_Pooling" / "extra.safetensors", {"p": ("F32", [10])})  # a module's own file
    sparse_safetensors(folder / "checkpoint-9" / "model.safetensors", {"w": ("F32", [10 ** 6])})  # no module: not read
    assert loaded_bytes(folder, None) == 20000 + 40 + 40
    assert loaded_bytes(folder, 4) == 40000 + 40 + 40 and loaded_bytes(folder, 2) == 20000 + 40 + 20
    sparse_safetensors(folder / "model.safetensors", {"w": ("BF16", [1 << 21, 1 << 20])})  # 2T values
    with pytest.raises(EmbedbenchError, match=r"^model.name_or_path=\S+huge: its weights take 8192.0 GiB as "
                                              r"model.dtype=fp32, and \d+\.\d GiB of memory is available; "
                                              r"model.dtype=bf16 halves fp32 weights$"):
        load_model(str(folder), "cpu")
    with pytest.raises(EmbedbenchError, match=r"its weights take 4096.0 GiB as model.dtype=auto, and .*available$"):
        load_model(str(folder), "cpu", dtype="auto")


def test_processes_torchrun_starts_on_one_machine_share_its_memory(tiny_model_path, tmp_path, monkeypatch):
    import shutil

    from embedbench.embedding.encoder import check_memory
    from embedbench.errors import EmbedbenchError
    from embedbench.memory import available_bytes

    folder = tmp_path / "large"
    shutil.copytree(tiny_model_path, folder)
    alone = available_bytes()
    sparse_safetensors(folder / "model.safetensors", {"w": ("F32", [int(alone * 0.6) // 4])})  # 60 % of it
    check_memory("large", str(folder), True, "cpu", "fp32")  # one process: it fits
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # as torchrun --nproc_per_node=2 sets it
    assert abs(available_bytes() - alone // 2) < alone * 0.05
    with pytest.raises(EmbedbenchError, match=r"^model.name_or_path=large: its weights take \d+\.\d GiB as "
                                              r"model.dtype=fp32, and \d+\.\d GiB of memory is available to "
                                              r"each of the 2 processes on this machine; model.dtype=bf16"):
        check_memory("large", str(folder), True, "cpu", "fp32")


@pytest.mark.parametrize("kind", ["SparseEncoder", "CrossEncoder"])
def test_a_sparse_or_cross_encoder_is_refused_not_scored_as_its_bare_transformer(tiny_model_path, tmp_path, kind):
    import json
    import shutil

    from embedbench.embedding.encoder import load_model
    from embedbench.errors import EmbedbenchError

    folder = shutil.copytree(tiny_model_path, tmp_path / "model")
    config = json.loads((folder / "config_sentence_transformers.json").read_text())
    assert config.get("model_type", "SentenceTransformer") == "SentenceTransformer"
    load_model(str(folder), "cpu")
    (folder / "config_sentence_transformers.json").write_text(json.dumps({**config, "model_type": kind}))
    with pytest.raises(EmbedbenchError, match=f"a sentence-transformers {kind}, not a dense embedder"):
        load_model(str(folder), "cpu")


def test_a_model_with_code_of_its_own_is_loaded_only_when_trusted(tiny_model_path, tmp_path):
    import json
    import shutil

    from embedbench.embedding.encoder import load_model
    from embedbench.errors import EmbedbenchError

    folder = shutil.copytree(tiny_model_path, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="ownbert", auto_map={"AutoConfig": "own.OwnConfig", "AutoModel": "own.OwnModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "own.py").write_text("from transformers import BertConfig, BertModel\n\n\nclass OwnConfig(BertConfig):\n"
                                   "    model_type = 'ownbert'\n\n\nclass OwnModel(BertModel):\n"
                                   "    config_class = OwnConfig\n")
    with pytest.raises(EmbedbenchError, match="runs code of its own; set model.trust_remote_code=true"):
        load_model(str(folder), "cpu")
    assert type(load_model(str(folder), "cpu", trust_remote_code=True)[0].model).__name__ == "OwnModel"


def test_a_model_that_is_not_a_transformer_nor_static_is_refused(tmp_path):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, WordEmbeddings
    from sentence_transformers.sentence_transformer.modules.tokenizer import WhitespaceTokenizer

    from embedbench.embedding.encoder import load_model
    from embedbench.errors import EmbedbenchError

    vectors = np.random.default_rng(0).random((3, 8), dtype=np.float32)  # an averaged word-vectors model
    SentenceTransformer(modules=[WordEmbeddings(WhitespaceTokenizer(["the", "cat", "sat"]), vectors), Pooling(8)],
                        device="cpu").save(str(tmp_path / "words"))
    with pytest.raises(EmbedbenchError, match="its first module is WordEmbeddings; embedbench encodes through a"):
        load_model(str(tmp_path / "words"), "cpu")


def test_a_transformer_whose_forward_takes_only_keywords_gets_every_input(tiny_model):
    from embedbench.embedding.encoder import LayerEncoder

    class KeywordsOnly(torch.nn.Module):  # a wrapper's forward, as some models' own code has
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config

        def forward(self, **kwargs):
            return self.inner(**kwargs)

    wrapped = copy.deepcopy(tiny_model)
    wrapped[0].model = KeywordsOnly(wrapped[0].model)
    encoder = LayerEncoder(wrapped)
    assert encoder._input_names == {"input_ids", "attention_mask", "token_type_ids"}
    expected = tiny_model.encode(TEXTS, convert_to_tensor=True)
    for backend in ("torch", "openvino"):
        out = encoder.encode(TEXTS, [2], precision="fp32", backend=backend)[2]
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)
