"""Attention with dropout, run a few texts at a time on CPU: every piece is dropped at rate p with its own
mask and scaled by 1 / (1 - p), padding stays masked, and a model trained in pieces computes what it
computes on those pieces one after another."""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile
from transformers import BertConfig, BertModel, LlamaConfig, LlamaModel

from embedbench.embedding.attention_chunks import (
    CHUNKED_SDPA,
    TEXTS_PER_CHUNK,
    chunked_attention_dropout,
    chunked_sdpa_attention,
)


class Bidirectional(torch.nn.Module):
    is_causal = False


def test_every_piece_drops_at_rate_p_with_its_own_mask_and_padding_stays_masked():
    texts, heads, tokens, padded, p = 3 * TEXTS_PER_CHUNK + 1, 2, 64, 8, 0.25
    query = key = torch.zeros(texts, heads, tokens, tokens)  # equal scores: each key gets 1 / its count
    value = torch.eye(tokens).expand(texts, heads, tokens, tokens)  # output j = the probability on key j
    mask = torch.ones(texts, 1, 1, tokens, dtype=torch.bool)
    mask[..., -padded:] = False
    torch.manual_seed(0)
    probs = chunked_sdpa_attention(Bidirectional(), query, key, value, mask, dropout=p)[0].transpose(1, 2)
    assert probs.shape == (texts, heads, tokens, tokens)
    assert (probs[..., -padded:] == 0).all()
    kept = probs[..., :-padded]
    assert torch.allclose(kept[kept != 0], torch.tensor(1 / ((tokens - padded) * (1 - p))))
    dropped = kept == 0
    for start in range(0, texts, TEXTS_PER_CHUNK):  # the last piece holds one text
        assert abs(dropped[start:start + TEXTS_PER_CHUNK].float().mean() - p) < 0.03
    assert (dropped[:TEXTS_PER_CHUNK] != dropped[TEXTS_PER_CHUNK:2 * TEXTS_PER_CHUNK]).any()


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


def _attention_calls(run) -> int:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    return sum(e.count for e in prof.key_averages() if e.key == "aten::scaled_dot_product_attention")


@pytest.mark.parametrize("build", [_bert, _llama], ids=["bert", "llama"])
def test_a_model_trained_in_pieces_computes_what_each_piece_computes_and_is_sdpa_after(build):
    model = build()
    ids = torch.randint(1, 50, (2 * TEXTS_PER_CHUNK, 12))
    attention = torch.ones_like(ids)
    attention[1, 7:] = 0
    pieces = (slice(0, TEXTS_PER_CHUNK), slice(TEXTS_PER_CHUNK, None))

    def step():
        torch.manual_seed(1)
        model.zero_grad()
        output = model(input_ids=ids, attention_mask=attention).last_hidden_state
        output.sum().backward()
        return output

    model.eval()
    plain = model(input_ids=ids, attention_mask=attention).last_hidden_state
    model.train()
    whole_calls = _attention_calls(step)
    with chunked_attention_dropout(model):
        assert model.config._attn_implementation == CHUNKED_SDPA
        chunked, chunked_calls = step(), _attention_calls(step)
        blocks = model.layers if build is _llama else model.encoder
        assert all(p.grad is not None and p.grad.isfinite().all() for p in blocks.parameters())
        model.eval()
        assert torch.equal(model(input_ids=ids, attention_mask=attention).last_hidden_state, plain)
    assert model.config._attn_implementation == "sdpa"
    assert (whole_calls, chunked_calls) == (1, 2)
    model.train()
    torch.manual_seed(1)  # one layer and no other dropout: the pieces draw their masks in this same order
    one_by_one = torch.cat([model(input_ids=ids[rows], attention_mask=attention[rows]).last_hidden_state
                            for rows in pieces])
    assert torch.allclose(chunked, one_by_one, atol=1e-6)
    assert not torch.allclose(chunked, plain, atol=1e-3)  # dropout was on


def test_other_attention_implementations_are_left_alone():
    model = _bert("eager")
    with chunked_attention_dropout(model):
        assert model.config._attn_implementation == "eager"
