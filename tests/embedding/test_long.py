"""Long inputs: LongEmbed's synthetic tasks generated here, chunking, and window extension on a tiny BERT
(position interpolation, grouped and recurrent positions) and a tiny LLaMA (RoPE: interpolation, NTK-aware
scaling, SelfExtend)."""
import json
import re

import pytest
import torch
from transformers import LlamaConfig, LlamaModel

from embedbench.data.longembed import FIRST, LAST, haystack_sentences, synthetic_task, tokenizer
from embedbench.embedding import long as long_module
from embedbench.embedding.encoder import LayerEncoder, load_encoder
from embedbench.embedding.heads import make_bidirectional
from embedbench.embedding.long import merged, self_extend, windows
from embedbench.errors import EmbedbenchError
from tests.helpers import needs_data, run_main

PROSE = [
    "Cells divide by mitosis. The spindle pulls the chromosomes apart. Each daughter cell gets one copy.",
    "Proteins fold into shapes. A misfolded protein may aggregate! Chaperones help them fold again.",
    "The liver stores glycogen. Insulin lowers blood sugar. Glucagon raises it when fasting.",
]
PERSON = re.compile(f"({'|'.join(FIRST)}) ({'|'.join(LAST)})")


def test_generator_gives_the_same_tasks_for_the_same_seed_and_documents_of_the_asked_length():
    haystack = haystack_sentences(PROSE)
    for kind in ("passkey", "needle"):
        first, again, other = (synthetic_task(kind, 512, 20, 10, seed, haystack) for seed in (7, 7, 8))
        assert first == again and first.corpus != other.corpus
        assert len(first.corpus) == 20 and len(first.queries) == 10
        lengths = [len(tokenizer()(first.doc_text(d))["input_ids"]) for d in first.corpus]
        assert all(480 <= n <= 512 for n in lengths), lengths
        for qid, judged in first.qrels.items():  # the person asked about is in the relevant document alone
            (doc,) = judged
            person = PERSON.search(first.queries[qid]).group(0)
            assert [d for d in first.corpus if person in first.doc_text(d)] == [doc]


def test_generator_refuses_more_queries_than_documents():
    with pytest.raises(EmbedbenchError, match="queries"):
        synthetic_task("passkey", 256, 5, 6, 0)


def test_windows_cut_at_token_boundaries_and_merge_by_mean_or_max(tiny_model):
    tok = tiny_model.tokenizer
    texts = ["short one", " ".join(f"word{i}" for i in range(40))]
    pieces, owners = windows(tok, texts, 16)
    assert pieces[0] == "short one" and owners.tolist()[0] == 0
    assert all(len(tok(p, add_special_tokens=False)["input_ids"]) <= 16 for p in pieces)
    assert " ".join(pieces[1:]).replace(" ", "") == texts[1].replace(" ", "")  # nothing lost, nothing repeated
    rows = torch.arange(len(pieces) * 2, dtype=torch.float32).reshape(len(pieces), 2)
    mean, top = merged({1: rows}, owners, 2, "mean")[1], merged({1: rows}, owners, 2, "max")[1]
    assert torch.equal(mean[0], rows[0]) and torch.allclose(mean[1], rows[1:].mean(0))
    assert torch.equal(top[1], rows[1:].max(0).values)


def test_position_interpolation_stretches_the_table_of_an_absolute_position_model(tiny_model_path):
    plain = load_encoder(str(tiny_model_path), "cpu")
    longer = load_encoder(str(tiny_model_path), "cpu", long="interpolate", long_length=1024)
    old = plain.transformer.auto_model.embeddings.position_embeddings.weight
    new = longer.transformer.auto_model.embeddings.position_embeddings.weight
    assert new.shape[0] == 1024 and longer.model.max_seq_length == 1024
    assert torch.equal(new[::2], old)  # twice the positions: every second row is the original
    assert torch.allclose(new[1::2][:-1], (old[:-1] + old[1:]) / 2)
    text = " ".join(["protein"] * 700)
    assert LayerEncoder(longer.model).token_lengths([text])[0] == 702  # no longer cut at 512


def test_rope_interpolation_and_ntk_rescale_the_rotary_frequencies(tiny_decoder):
    def inv_freq(encoder):
        (module,) = [m for m in encoder.transformer.auto_model.modules() if hasattr(m, "inv_freq")]
        return module.inv_freq

    base = inv_freq(load_encoder(str(tiny_decoder), "cpu"))
    interpolated = load_encoder(str(tiny_decoder), "cpu", long="interpolate", long_length=512)
    ntk = load_encoder(str(tiny_decoder), "cpu", long="ntk", long_length=512)
    assert torch.allclose(inv_freq(interpolated), base / 4)  # 512 / 128 positions
    scaled = inv_freq(ntk)
    assert torch.isclose(scaled[0], base[0]) and torch.isclose(scaled[-1], base[-1] / 4)  # highest kept, lowest / 4
    assert torch.all(scaled[1:-1] < base[1:-1]) and torch.all(scaled[1:-1] > base[1:-1] / 4)
    texts = [" ".join(["cell"] * 300)]
    assert LayerEncoder(ntk.model).token_lengths(texts)[0] > 128
    for encoder in (interpolated, ntk):  # past the trained window, and different from the plain model's
        assert torch.isfinite(encoder.encode(texts, [encoder.n_layers])[encoder.n_layers]).all()


@pytest.mark.parametrize("strategy", ["interpolate", "ntk", "selfextend"])
def test_a_model_saved_with_a_rotary_extension_loads_extended_again(tiny_decoder, tmp_path, strategy):
    # the scaled frequencies are not among the saved weights, and SelfExtend is code: both come back on loading
    texts = [" ".join(PROSE * 4), "a short text"]  # the first past the 128 positions trained
    extended = load_encoder(str(tiny_decoder), "cpu", long=strategy, long_length=512)
    extended.model.save(str(tmp_path / "saved"))
    reloaded = load_encoder(str(tmp_path / "saved"), "cpu")
    assert reloaded.model.max_seq_length == 512
    assert reloaded.transformer.auto_model.config.max_position_embeddings == 512
    last = extended.n_layers
    expected = extended.encode(texts, [last])[last]
    torch.testing.assert_close(reloaded.encode(texts, [last])[last], expected, rtol=0, atol=1e-6)
    plain = load_encoder(str(tiny_decoder), "cpu", max_seq_length=512)  # the original frequencies, unextended
    assert (plain.encode(texts, [last])[last][0] - expected[0]).abs().max() > 1e-4


def test_grouped_and_recurrent_positions_reread_the_absolute_table(tiny_model_path):
    old = load_encoder(str(tiny_model_path), "cpu").transformer.auto_model.embeddings.position_embeddings.weight
    grouped, recurrent = (load_encoder(str(tiny_model_path), "cpu", long=strategy, long_length=1024)
                          .transformer.auto_model.embeddings.position_embeddings.weight
                          for strategy in ("group", "recur"))
    assert torch.equal(grouped[::2], old) and torch.equal(grouped[1::2], old)  # position j reads j // 2
    assert torch.equal(recurrent[:512], old) and torch.equal(recurrent[512:], old)  # position j reads j mod 512


def test_position_strategies_on_the_wrong_kind_of_model_stop_with_one_line(tiny_model_path, tiny_decoder):
    for strategy in ("ntk", "selfextend"):
        with pytest.raises(EmbedbenchError, match=f"model.long={strategy} works on rotary position embeddings"):
            load_encoder(str(tiny_model_path), "cpu", long=strategy, long_length=1024)
    with pytest.raises(EmbedbenchError, match="model.long=group re-reads an absolute position table"):
        load_encoder(str(tiny_decoder), "cpu", long="group", long_length=512)


def tiny_llama(bidirectional: bool, group: int | None = None, window: int | None = None):
    """A 2-layer LLaMA with grouped-query attention, causal or made bidirectional, SelfExtended if asked."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=4000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0,
                         attn_implementation="sdpa")
    model = LlamaModel(config).eval()
    if bidirectional:
        make_bidirectional(model)
    if group:
        self_extend(model, group, window)
    return model


@pytest.mark.parametrize("bidirectional", [False, True])
def test_selfextend_is_the_model_within_its_window_and_grouped_positions_beyond(bidirectional):
    ids = torch.randint(1000, 4000, (2, 40), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0
    real = mask.bool()

    def states(model, positions=None):
        return model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state[real]

    plain = states(tiny_llama(bidirectional))
    grouped = states(tiny_llama(bidirectional), (torch.arange(40) // 4)[None].expand(2, -1))
    assert torch.allclose(states(tiny_llama(bidirectional, 4, 64)), plain, atol=1e-5)  # all within the window
    assert torch.allclose(states(tiny_llama(bidirectional, 1, 8)), plain, atol=1e-5)  # groups of one
    assert torch.allclose(states(tiny_llama(bidirectional, 4, 0)), grouped, atol=1e-5)  # no window: all grouped
    both = states(tiny_llama(bidirectional, 4, 8))
    assert not torch.allclose(both, plain, atol=1e-3) and not torch.allclose(both, grouped, atol=1e-3)


def test_selfextend_distances_keep_their_size_both_ways_and_group_beyond_the_window():
    """One raw vector at every position: a score depends only on the relative distance the attention used."""
    model = tiny_llama(True, group=4, window=8)
    attention = model.layers[0].self_attn
    rotary = attention.self_extend[0]
    vector = torch.randn(1, 1, 1, 8, generator=torch.Generator().manual_seed(2)).expand(1, 1, 40, 8)
    positions = torch.arange(40)[None]
    turned = long_module._rotate(vector, *rotary(vector, positions))
    _, weights = long_module.self_extended_attention(attention, turned, turned, turned, None, scaling=1.0)
    scores = torch.log(weights[0, 0]) - torch.log(weights[0, 0]).diagonal()[:, None]  # score(i,j) - score(i,i)

    def score(distance: int) -> float:  # query and key this far apart, less the query against itself
        pair = long_module._rotate(vector[:, :, :2], *rotary(vector, torch.tensor([[0, distance]])))
        return float(pair[0, 0, 1] @ pair[0, 0, 0] - pair[0, 0, 0] @ pair[0, 0, 0])

    shift = 8 - 8 // 4  # the query moves this far from its group, towards the key's side
    for i, j in [(20, 23), (23, 20), (20, 35), (35, 20), (3, 39)]:
        distance = i - j if abs(i - j) < 8 else i // 4 - j // 4 + (shift if j < i else -shift)
        assert scores[i, j].item() == pytest.approx(score(distance), abs=1e-4)
    assert abs(scores[20, 35] - score(20 // 4 - 35 // 4 + shift)) > 1e-3  # a shift the wrong way is caught


def test_selfextend_takes_texts_past_the_window(tiny_decoder):
    extended = load_encoder(str(tiny_decoder), "cpu", long="selfextend", long_length=512)
    (attention, *_) = [m for m in extended.transformer.auto_model.modules() if hasattr(m, "self_extend")]
    assert attention.self_extend[1:] == (7, 64)  # window 128 / 2; (512 - 64) / (128 - 64) = 7 groups
    texts = [" ".join(["cell"] * 300)]
    assert LayerEncoder(extended.model).token_lengths(texts)[0] > 128
    plain = load_encoder(str(tiny_decoder), "cpu")
    short = ["a short text about cells"]
    assert torch.allclose(extended.encode(short, [2])[2], plain.encode(short, [2])[2], atol=1e-5)
    assert torch.isfinite(extended.encode(texts, [2])[2]).all()


@needs_data
def test_longembed_synthetic_eval_logs_every_length_the_average_and_the_plot(tmp_path):
    """MiniLM (a 256-token window): chunking equals truncation on documents inside the window and finds
    what truncation cannot see beyond it."""
    task = "eval.tasks.longembed_synthetic"
    args = ["eval=longembed_synthetic", f"{task}.lengths=[128,1024]", f"{task}.docs=12", f"{task}.queries=12",
            "eval.cache=false"]
    scores = {}
    for strategy in ("truncate", "chunk"):
        run_main("eval", *args, f"model.long={strategy}", f"hydra.run.dir={tmp_path / strategy}", cwd=tmp_path)
        scores[strategy] = json.loads((tmp_path / strategy / "results.json").read_text())["metrics"]
        assert (tmp_path / strategy / "by_length_longembed_synthetic.png").is_file()
    truncate, chunk = scores["truncate"], scores["chunk"]
    names = [f"{kind}_{n}/ndcg_at_1" for kind in ("passkey", "needle") for n in (128, 1024)]
    assert set(names) <= set(truncate)
    assert truncate["longembed_synthetic/ndcg_at_1"] == pytest.approx(sum(truncate[n] for n in names) / 4)
    for kind in ("passkey", "needle"):
        assert chunk[f"{kind}_128/ndcg_at_1"] == truncate[f"{kind}_128/ndcg_at_1"]
    assert chunk["passkey_1024/ndcg_at_1"] > truncate["passkey_1024/ndcg_at_1"] + 0.1
