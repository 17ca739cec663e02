"""Dropout drawn from random words on CPU: the masks' rate, independence and seeding, attention with such a
mask against torch's own attention math given the same mask, and a model inside ``drawn_fast``."""
import warnings

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from embedbench.embedding.dropout import DrawnDropout, drawn_dropout_attention, drawn_fast, drop_mask, dropped


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_masks_drop_each_place_with_probability_p_independently_of_its_neighbours(p):
    torch.manual_seed(0)
    drops = drop_mask(torch.Size((1001, 999)), p).flatten().double()  # an odd count
    sigma = (p * (1 - p) / drops.numel()) ** 0.5
    assert abs(drops.mean().item() - p) < 5 * sigma
    # neighbours are the two halves of one random word: both dropped as often as independent draws would be
    assert abs((drops[:-1] * drops[1:]).mean().item() - p ** 2) < 10 * sigma
    # and the pieces drawn side by side are not copies of each other
    quarter = drops.numel() // 4
    assert abs((drops[:quarter] * drops[quarter:2 * quarter]).mean().item() - p ** 2) < 10 * sigma


@pytest.mark.parametrize("shape", [(0,), (1,), (3, 1), (2, 0, 5)])
def test_masks_of_fewer_places_than_pieces_have_the_shape_asked_for(shape):
    assert drop_mask(torch.Size(shape), 0.5).shape == shape


def test_masks_follow_torch_seed():
    shape = torch.Size((64, 64))
    torch.manual_seed(3)
    first = drop_mask(shape, 0.1)
    torch.manual_seed(3)
    again = drop_mask(shape, 0.1)
    torch.manual_seed(4)
    other = drop_mask(shape, 0.1)
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_dropped_zeroes_the_masked_entries_and_scales_the_rest_and_their_gradient():
    x = (torch.rand(50, 40, dtype=torch.float64) + 1).requires_grad_()
    torch.manual_seed(5)
    out = dropped(x, 0.2)
    torch.manual_seed(5)
    drops = drop_mask(x.shape, 0.2)
    assert torch.allclose(out, torch.where(drops, 0, x / 0.8)) and (out == 0).sum() == drops.sum()
    out.sum().backward()
    assert torch.allclose(x.grad, (~drops).double() / 0.8)


def test_a_dropout_module_draws_only_while_training():
    module = DrawnDropout(0.5)
    x = torch.ones(1000)
    assert torch.equal(module.eval()(x), x)
    assert set(module.train()(x).unique().tolist()) == {0.0, 2.0}


def additive(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask as the additive one scaled_dot_product_attention turns it into before its math."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, float("-inf"))


@pytest.mark.parametrize("causal,groups,mask", [(False, 1, "padding"), (True, 1, None), (True, 2, "float"),
                                                (False, 2, None)])
def test_attention_with_dropout_and_its_gradients_are_torch_attention_math_with_the_same_mask(causal, groups, mask):
    torch.manual_seed(0)
    batch, heads, tokens, size, p = 2, 4, 7, 8, 0.3
    module = nn.Module()
    module.is_causal, module.num_key_value_groups = causal, groups
    query = torch.randn(batch, heads, tokens, size, dtype=torch.float64, requires_grad=True)
    key, value = (torch.randn(batch, heads // groups, tokens, size, dtype=torch.float64, requires_grad=True)
                  for _ in range(2))
    valid = torch.ones(batch, tokens, dtype=torch.bool)
    valid[1, 5:] = False
    given = None
    if mask == "padding":  # as transformers' sdpa mask: True where a query may see a key
        given = valid[:, None, None, :].expand(batch, 1, tokens, tokens)
    elif mask == "float":
        padded = torch.zeros(batch, 1, tokens, tokens, dtype=torch.float64).masked_fill(~valid[:, None, None], -1e30)
        given = padded + torch.full((tokens, tokens), -1e30, dtype=torch.float64).triu(1)
    torch.manual_seed(1)
    out, _ = drawn_dropout_attention(module, query, key, value, given, dropout=p)
    torch.manual_seed(1)
    keep = ~drop_mask(torch.Size((batch, heads, tokens, tokens)), p)
    with warnings.catch_warnings():  # torch's note that a given dropout mask is meant for tests
        warnings.simplefilter("ignore")
        expected, _ = torch.ops.aten._scaled_dot_product_attention_math(
            query, key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1), additive(given, query.dtype),
            p, causal and given is None, keep)
    assert torch.allclose(out, expected.transpose(1, 2), atol=1e-12)
    weights = torch.randn(out.shape, dtype=torch.float64)  # and the same gradients
    ours = torch.autograd.grad((out * weights).sum(), (query, key, value))
    theirs = torch.autograd.grad((expected.transpose(1, 2) * weights).sum(), (query, key, value))
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(ours, theirs))


def bert(attention: str) -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.2,
                        attn_implementation=attention)
    return BertModel(config, add_pooling_layer=False).eval()


def test_a_model_inside_drawn_fast_keeps_its_masks_and_inference_and_gets_both_back_on_leaving():
    model, eager = bert("sdpa"), bert("eager")
    ids = torch.randint(1, 100, (3, 12))
    padding = torch.ones(3, 12, dtype=torch.long)
    padding[1, 4:] = 0
    padding[2, 9:] = 0

    def forward(seed: int | None = None):
        if seed is not None:
            torch.manual_seed(seed)
        return model(input_ids=ids, attention_mask=padding).last_hidden_state

    reference = forward()
    model.train()
    with_torch = forward(1)
    model.eval()
    with drawn_fast(nn.Sequential(model, eager)):
        assert model.config._attn_implementation != "sdpa" and eager.config._attn_implementation == "eager"
        inference = forward()
        model.train()
        assert all(type(m) is DrawnDropout for m in model.modules() if isinstance(m, nn.Dropout))
        first, again, other = forward(1), forward(1), forward(2)
        first.sum().backward()
    assert torch.equal(first, again) and not torch.equal(first, other) and not torch.allclose(first, with_torch)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # padded keys stay out of attention: inference is the model's own, through the masks sdpa is given
    assert torch.allclose(inference, reference, atol=1e-6)
    assert model.config._attn_implementation == "sdpa"
    assert all(type(m) is nn.Dropout for m in model.modules() if isinstance(m, nn.Dropout))


def test_gradient_checkpointing_recomputes_the_same_masks():
    def gradients(checkpointing: bool) -> torch.Tensor:
        model = bert("sdpa").train()
        if checkpointing:
            model.gradient_checkpointing_enable()
        ids = torch.randint(1, 100, (3, 12), generator=torch.Generator().manual_seed(1))
        with drawn_fast(model):
            torch.manual_seed(5)
            (model(input_ids=ids).last_hidden_state ** 2).sum().backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    assert torch.equal(gradients(True), gradients(False))


def test_fp16_attention_stays_with_sdpa_which_computes_it_in_fp32():
    module = nn.Module()
    module.is_causal = False
    query, key, value = (torch.randn(2, 4, 9, 8).half() for _ in range(3))
    torch.manual_seed(1)
    out, _ = drawn_dropout_attention(module, query, key, value, None, dropout=0.2)
    torch.manual_seed(1)
    expected, _ = sdpa_attention_forward(module, query, key, value, None, dropout=0.2)
    assert out.dtype == torch.float16 and torch.equal(out, expected)
