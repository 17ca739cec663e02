"""Attention with dropout, run a few texts at a time on CPU: without dropout it is sdpa's attention (padding,
causal, grouped heads); with it every piece is dropped at rate p with its own mask, scaled by 1 / (1 - p),
the masks following the seed and not the thread count; a model trains through it and is on sdpa after."""
import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel

from embedbench.embedding.attention_chunks import (
    CHUNKED_SDPA,
    TEXTS_PER_CHUNK,
    _pool,
    attend,
    chunked_attention_dropout,
    chunked_sdpa_attention,
    keep_mask,
)


class Bidirectional(torch.nn.Module):
    is_causal = False


def _qkv(texts=3, heads=4, kv_heads=4, tokens=10, dim=8):
    torch.manual_seed(0)
    return (torch.randn(texts, heads, tokens, dim), torch.randn(texts, kv_heads, tokens, dim),
            torch.randn(texts, kv_heads, tokens, dim))


def test_without_dropout_it_is_sdpa_with_a_padding_mask_boolean_or_additive_causal_and_grouped_heads():
    query, key, value = _qkv(kv_heads=2)
    padding = torch.ones(3, 1, 1, 10, dtype=torch.bool)
    padding[1, ..., 6:] = False
    grouped = key.repeat_interleave(2, dim=1), value.repeat_interleave(2, dim=1)
    additive = torch.zeros(padding.shape).masked_fill(~padding, torch.finfo(torch.float32).min)
    for mask, causal in ((padding, False), (additive, False), (None, True), (None, False)):
        expected = F.scaled_dot_product_attention(query, *grouped, attn_mask=mask, is_causal=causal, scale=0.3)
        assert torch.allclose(attend(query, key, value, mask, 0.3, causal, 0.0), expected, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_every_piece_drops_at_rate_p_with_its_own_mask_and_padding_stays_masked(dtype):
    texts, heads, tokens, padded, p = 3 * TEXTS_PER_CHUNK + 1, 2, 64, 8, 0.25
    query = key = torch.zeros(texts, heads, tokens, tokens, dtype=dtype)  # equal scores: 1 / keys each
    value = torch.eye(tokens, dtype=dtype).expand(texts, heads, tokens, tokens)  # output j = probability on key j
    mask = torch.ones(texts, 1, 1, tokens, dtype=torch.bool)
    mask[..., -padded:] = False
    torch.manual_seed(0)
    probs = chunked_sdpa_attention(Bidirectional(), query, key, value, mask, dropout=p)[0].transpose(1, 2)
    assert probs.shape == (texts, heads, tokens, tokens)
    assert (probs[..., -padded:] == 0).all()
    kept = probs[..., :-padded]
    assert torch.allclose(kept[kept != 0].float(), torch.tensor(1 / ((tokens - padded) * (1 - p))), rtol=1e-2)
    dropped = kept == 0
    for start in range(0, texts, TEXTS_PER_CHUNK):  # the last piece holds one text
        assert abs(dropped[start:start + TEXTS_PER_CHUNK].float().mean() - p) < 0.03
    assert (dropped[:TEXTS_PER_CHUNK] != dropped[TEXTS_PER_CHUNK:2 * TEXTS_PER_CHUNK]).any()


def test_masks_follow_the_seed_not_the_thread_count():
    threads = torch.get_num_threads()
    torch.manual_seed(5)
    first = keep_mask(torch.Size([6, 1000]), 0.1)
    try:
        torch.set_num_threads(1)
        _pool.cache_clear()  # a pool of one thread
        torch.manual_seed(5)
        again = keep_mask(torch.Size([6, 1000]), 0.1)
    finally:
        torch.set_num_threads(threads)
        _pool.cache_clear()
    assert torch.equal(first, again)
    zero, kept = first.unique().tolist()
    assert zero == 0 and kept == pytest.approx(1 / 0.9) and (first == 0).float().mean() == pytest.approx(0.1, abs=0.02)
    assert not torch.equal(first, keep_mask(torch.Size([6, 1000]), 0.1))


def _bert(attn_implementation: str = "sdpa") -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.5,
                        attn_implementation=attn_implementation)
    return BertModel(config)


def _llama() -> LlamaModel:
    """Causal, with grouped key/value heads (4 query heads share 2)."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, attention_dropout=0.5,
                         max_position_embeddings=64, attn_implementation="sdpa")
    return LlamaModel(config)


def _sdpa_calls(run) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return sum(e.count for e in prof.key_averages() if e.key == "aten::scaled_dot_product_attention")


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("build", [_bert, _llama], ids=["bert", "llama"])
def test_a_model_trains_through_the_pieces_reproducibly_and_is_on_sdpa_after(build, precision):
    """fp32 runs sdpa on each of the three pieces, bf16 autocast runs :func:`attend` on them."""
    model = build()
    ids = torch.randint(1, 50, (2 * TEXTS_PER_CHUNK + 1, 12))
    attention = torch.ones_like(ids)
    attention[1, 7:] = 0

    def step(seed=1):
        torch.manual_seed(seed)
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            output = model(input_ids=ids, attention_mask=attention).last_hidden_state
        output.float().sum().backward()
        return output

    model.eval()
    plain = model(input_ids=ids, attention_mask=attention).last_hidden_state
    model.train()
    with chunked_attention_dropout(model):
        assert model.config._attn_implementation == CHUNKED_SDPA
        assert _sdpa_calls(step) == (3 if precision == "fp32" else 0)  # training went through the pieces
        chunked = step()
        blocks = model.layers if build is _llama else model.encoder
        assert all(p.grad is not None and p.grad.isfinite().all() for p in blocks.parameters())
        assert torch.equal(step(), chunked) and not torch.allclose(step(seed=2).float(), chunked.float(), atol=1e-2)
        model.eval()
        assert torch.allclose(model(input_ids=ids, attention_mask=attention).last_hidden_state, plain, atol=1e-6)
        assert _sdpa_calls(lambda: model(input_ids=ids, attention_mask=attention)) == 1  # no dropout: sdpa's own
    assert model.config._attn_implementation == "sdpa"
    assert not torch.allclose(chunked.float(), plain, atol=1e-2)  # dropout was on


def test_other_attention_implementations_are_left_alone():
    model = _bert("eager")
    with chunked_attention_dropout(model):
        assert model.config._attn_implementation == "eager"
