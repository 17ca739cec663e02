"""Decoder-only embedders: a tiny LLaMA built here (random weights, MiniLM's tokenizer) with the causal mask
removed or kept, last-token pooling under either padding side, a replaced pooling head that is saved with
the model, NV-Embed's latent-attention head, LoRA adapters that alone train and merge into a plain model,
and train -> save -> eval runs."""
import json

import pytest
import torch
import torch.nn.functional as F

from embedbench.config import EncodeConfig, LatentAttentionConfig, LoraConfig
from embedbench.embedding.embedder import Embedder
from embedbench.embedding.encoder import LayerEncoder, load_model
from embedbench.embedding.heads import add_lora, merge_lora
from embedbench.errors import EmbedbenchError
from tests.helpers import mlflow_runs, needs_data, run_main

TEXTS = ["a short text", "a somewhat longer text about cells and proteins", "three words here"]


def token_states(model, texts):
    encoder = LayerEncoder(model)
    features = model.preprocess(texts)
    return encoder.runtime()(features)[-1], features["attention_mask"]


def test_the_causal_mask_goes_only_when_asked(tiny_decoder):
    changed = ["a short text", "a short cell"]  # the same first tokens, another last one
    for bidirectional in (False, True):
        states, _ = token_states(load_model(tiny_decoder, "cpu", bidirectional=bidirectional), changed)
        first_moved = not torch.allclose(states[0, 1], states[1, 1], atol=1e-6)
        assert first_moved == bidirectional


def test_a_bidirectional_model_trains_and_encodes_through_sentence_transformers_as_it_encodes(tiny_decoder):
    # sentence-transformers calls the transformer's forward itself, as training (through the model) and its own
    # encode do: the causal mask must be gone on that path too
    model = load_model(tiny_decoder, "cpu", bidirectional=True)
    encoder = LayerEncoder(model)
    features = model.preprocess(TEXTS)
    encoded = encoder.pooled(features, [encoder.n_layers])[encoder.n_layers]
    trained = encoder.pooled(features, [encoder.n_layers], through=model)[encoder.n_layers]
    torch.testing.assert_close(trained, encoded, rtol=0, atol=1e-5)
    torch.testing.assert_close(model.encode(TEXTS, convert_to_tensor=True), encoded.detach(), rtol=0, atol=1e-5)
    causal = load_model(tiny_decoder, "cpu").encode(TEXTS, convert_to_tensor=True)
    assert F.cosine_similarity(causal, encoded.detach()).max() < 0.999


def test_a_saved_bidirectional_model_loads_bidirectional_again(tiny_decoder, tmp_path):
    changed = ["a short text", "a short cell"]  # the same first tokens, another last one
    model = load_model(tiny_decoder, "cpu", bidirectional=True)
    model.save(str(tmp_path / "saved"))
    reloaded = load_model(str(tmp_path / "saved"), "cpu")
    states, _ = token_states(reloaded, changed)
    assert not torch.allclose(states[0, 1], states[1, 1], atol=1e-6)  # the first token sees the last one
    torch.testing.assert_close(states, token_states(model, changed)[0], rtol=0, atol=1e-6)
    # the model it was loaded from stays causal
    causal, _ = token_states(load_model(tiny_decoder, "cpu"), changed)
    assert torch.allclose(causal[0, 1], causal[1, 1], atol=1e-6)


def test_bidirectional_is_refused_for_an_encoder(tiny_model_path):
    with pytest.raises(EmbedbenchError, match="no causal attention"):
        load_model(tiny_model_path, "cpu", bidirectional=True)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_last_token_pooling_takes_the_same_token_under_left_and_right_padding(tiny_decoder, bidirectional):
    pooled = {}
    for side in ("left", "right"):
        model = load_model(tiny_decoder, "cpu", pooling="last_token", bidirectional=bidirectional, padding_side=side)
        encoder = LayerEncoder(model)
        pooled[side] = encoder.encode(TEXTS, [encoder.n_layers], batch_size=8)[encoder.n_layers]
        one_by_one = torch.cat([encoder.encode([text], [encoder.n_layers])[encoder.n_layers] for text in TEXTS])
        torch.testing.assert_close(pooled[side], one_by_one, atol=1e-5, rtol=1e-4)  # padding changes nothing
    torch.testing.assert_close(pooled["left"], pooled["right"], atol=1e-5, rtol=1e-4)
    states, mask = token_states(load_model(tiny_decoder, "cpu", bidirectional=bidirectional, padding_side="right"),
                                TEXTS)
    last = mask.sum(1) - 1
    torch.testing.assert_close(pooled["right"], states[torch.arange(len(TEXTS)), last], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("bidirectional, side", [(False, "left"), (False, "right"), (True, "left"), (True, "right")])
@pytest.mark.parametrize("precision, min_cos", [("bf16", 0.999), ("int8", 0.99)])
def test_openvino_encoding_of_a_decoder_stays_finite_and_close_to_fp32_under_either_padding(
        tiny_decoder, bidirectional, side, precision, min_cos):
    """Causal and padded on the left, the padding positions attend to no key: OpenVINO's attention gave their
    rows NaN, which the next layer spread to every token."""
    encoder = LayerEncoder(load_model(tiny_decoder, "cpu", pooling="last_token", bidirectional=bidirectional,
                                      padding_side=side))
    last = encoder.n_layers
    embed = Embedder(encoder, [last], EncodeConfig(precision=precision))
    assert embed.backend == "openvino"
    out = embed(TEXTS * 3, "texts")[last]
    assert torch.isfinite(out).all()
    assert F.cosine_similarity(out, encoder.encode(TEXTS * 3, [last])[last]).min() > min_cos


def test_a_replaced_pooling_head_is_saved_with_the_model(tiny_decoder, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = load_model(tiny_decoder, "cpu", pooling="cls")
    model.save(str(tmp_path / "saved"))
    reloaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu")
    assert reloaded[1].pooling_mode == "cls"
    torch.testing.assert_close(reloaded.encode(TEXTS, convert_to_tensor=True),
                               model.encode(TEXTS, convert_to_tensor=True))


SMALL_LATENT = LatentAttentionConfig(latents=16, heads=2)


def test_a_latent_attention_head_trains_and_reloads_bit_identical(tiny_decoder, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = load_model(tiny_decoder, "cpu", pooling="latent_attention", latent_attention=SMALL_LATENT)
    again = load_model(tiny_decoder, "cpu", pooling="latent_attention", latent_attention=SMALL_LATENT)
    torch.testing.assert_close(dict(model[1].named_parameters()), dict(again[1].named_parameters()), rtol=0, atol=0)
    start = {name: p.detach().clone() for name, p in model[1].named_parameters()}
    encoder = LayerEncoder(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    encoder.pooled(model.preprocess(TEXTS), [encoder.n_layers])[encoder.n_layers].pow(2).sum().backward()
    optimizer.step()
    moved = [name for name, p in model[1].named_parameters() if not torch.equal(p, start[name])]
    assert "latent_array" in moved and any(name.startswith("attention.") for name in moved)
    model.save(str(tmp_path / "saved"))
    expected = model.encode(TEXTS, convert_to_tensor=True)
    for reloaded in (SentenceTransformer(str(tmp_path / "saved"), device="cpu", trust_remote_code=True),
                     load_model(tmp_path / "saved", "cpu"),  # embedbench's own head needs no trust_remote_code
                     load_model(tmp_path / "saved", "cpu", pooling="latent_attention", latent_attention=SMALL_LATENT)):
        assert torch.equal(reloaded.encode(TEXTS, convert_to_tensor=True), expected)  # the trained head, kept


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_a_latent_attention_head_can_leave_an_instruction_out_of_its_mean(tiny_decoder, tmp_path, padding_side):
    from sentence_transformers import SentenceTransformer

    from embedbench.embedding.prompts import Prompted

    instruction = "Instruct: find the passage that answers the question\nQuery: "
    options = {"pooling": "latent_attention", "latent_attention": SMALL_LATENT, "bidirectional": True,
               "padding_side": padding_side}
    model = load_model(tiny_decoder, "cpu", include_prompt=False, **options)
    encoder = LayerEncoder(model)
    assert encoder.excludes_prompt
    # sentence-transformers' encode counts the instruction's tokens and hands them to the head to leave out
    expected = model.encode(TEXTS, prompt=instruction, convert_to_tensor=True)
    ours = encoder.encode([Prompted(instruction, text) for text in TEXTS[:2]] + [TEXTS[2]], [encoder.n_layers],
                          batch_size=3)[encoder.n_layers]
    assert F.cosine_similarity(ours[:2], expected[:2]).min() > 0.99999
    assert F.cosine_similarity(ours[2:], model.encode(TEXTS[2:], convert_to_tensor=True)).min() > 0.99999
    whole = load_model(tiny_decoder, "cpu", **options).encode(TEXTS, prompt=instruction, convert_to_tensor=True)
    assert F.cosine_similarity(whole, expected).max() < 0.9999  # the instruction's tokens really left out
    model.save(str(tmp_path / "saved"))  # and saved so: sentence-transformers reads the setting back
    reloaded = SentenceTransformer(str(tmp_path / "saved"), device="cpu", trust_remote_code=True)
    assert reloaded[1].include_prompt is False
    reloaded = load_model(tmp_path / "saved", "cpu", bidirectional=True, padding_side=padding_side)
    assert torch.equal(reloaded.encode(TEXTS, prompt=instruction, convert_to_tensor=True), expected)


def test_include_prompt_is_refused_without_a_pooling_module_to_set(tiny_decoder, tiny_model):
    from sentence_transformers import SentenceTransformer

    folder = tiny_decoder.parent / "no_pooling"
    SentenceTransformer(modules=[tiny_model[0]], device="cpu").save(str(folder))
    with pytest.raises(EmbedbenchError, match="model.include_prompt=false: the model has no pooling module"):
        load_model(folder, "cpu", include_prompt=False)


def test_lora_trains_only_the_adapters_and_merges_into_a_plain_model(tiny_decoder, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = load_model(tiny_decoder, "cpu", pooling="last_token", bidirectional=True)
    base = {name: p.detach().clone() for name, p in model.named_parameters()}
    add_lora(model, LoraConfig(r=4))
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    encoder = LayerEncoder(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(2):  # the first step moves only B (A's gradient is zero while B is)
        features = model.preprocess(TEXTS)
        encoder.pooled(features, [encoder.n_layers])[encoder.n_layers].pow(2).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    adapted = encoder.encode(TEXTS, [encoder.n_layers])[encoder.n_layers]
    merge_lora(model)
    merged = encoder.encode(TEXTS, [encoder.n_layers])[encoder.n_layers]
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=1e-4)
    assert not any("lora_" in name for name, _ in model.named_parameters())
    changed = [name for name, p in model.named_parameters() if not torch.equal(p, base[name])]
    assert changed and all(name.endswith(("q_proj.weight", "v_proj.weight")) for name in changed)
    model.save(str(tmp_path / "merged"))
    assert not (tmp_path / "merged" / "adapter_config.json").exists()
    reloaded = SentenceTransformer(str(tmp_path / "merged"), device="cpu")
    unmasked = load_model(tmp_path / "merged", "cpu", bidirectional=True)
    torch.testing.assert_close(LayerEncoder(unmasked).encode(TEXTS, [2])[2], merged, atol=1e-5, rtol=1e-4)
    assert reloaded[1].pooling_mode == "lasttoken"


@needs_data
@pytest.mark.slow
def test_train_save_and_eval_a_bidirectional_last_token_decoder(tiny_decoder, scifact_slice, tmp_path):
    from sentence_transformers import SentenceTransformer

    decoder = ["model.pooling=last_token", "model.bidirectional=true", "model.padding_side=left"]
    run_main("train", f"model.name_or_path={tiny_decoder}", *decoder, "trainer=debug",
             "trainer.gradient_checkpointing=true", f"data.root={scifact_slice}", "eval=sts", "eval.max_pairs=100",
             f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    metrics = json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    assert -1 <= metrics["stsb/spearman"] <= 1
    trained = SentenceTransformer(str(tmp_path / "run" / "model"), device="cpu")
    assert trained[1].pooling_mode == "lasttoken" and trained.tokenizer.padding_side == "left"
    # scored as trained without model.bidirectional again: the saved model carries it
    run_main("eval", f"model.name_or_path={tmp_path / 'run' / 'model'}", "eval=sts",
             "eval.max_pairs=100", "eval.grid=full", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)
    scored = json.loads((tmp_path / "eval" / "results.json").read_text())["metrics"]
    assert scored["stsb/spearman"] == pytest.approx(metrics["stsb/spearman"], abs=1e-6)
    assert "stsb/spearman/l1_d32" in scored  # the grid: every layer, from the same pass


@needs_data
@pytest.mark.slow
def test_a_lora_run_with_latent_attention_trains_both_and_loads_in_sentence_transformers(tiny_decoder,
                                                                                          scifact_slice, tmp_path):
    from sentence_transformers import SentenceTransformer

    run_main("train", f"model.name_or_path={tiny_decoder}", "model.pooling=latent_attention",
             "model.latent_attention.latents=16", "model.latent_attention.heads=2", "model.bidirectional=true",
             "model.lora.r=4", "trainer=debug", "trainer.lr=0.01", f"data.root={scifact_slice}", "eval=sts",
             "eval.max_pairs=100", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert "stsb/spearman" in json.loads((tmp_path / "run" / "results.json").read_text())["metrics"]
    trained = SentenceTransformer(str(tmp_path / "run" / "model"), device="cpu", trust_remote_code=True)
    start = load_model(tiny_decoder, "cpu", pooling="latent_attention", latent_attention=SMALL_LATENT)
    weights = dict(start.named_parameters())
    changed = {name for name, p in trained.named_parameters() if not torch.equal(p, weights[name])}
    transformer = {name for name in changed if name.startswith("0.")}
    assert transformer and all(name.endswith(("q_proj.weight", "v_proj.weight")) for name in transformer)
    assert "1.latent_array" in changed  # the head trained beside the adapters


def test_a_tokenizer_without_a_padding_token_pads_with_its_end_of_sequence_token(tiny_decoder, tmp_path):
    model = load_model(tiny_decoder, "cpu")
    model.tokenizer.pad_token, model.tokenizer.eos_token = None, "[SEP]"
    model.save(str(tmp_path / "no_pad"))
    reloaded = load_model(tmp_path / "no_pad", "cpu", pooling="last_token")
    assert reloaded.tokenizer.pad_token == "[SEP]"
    assert LayerEncoder(reloaded).encode(TEXTS, [2], batch_size=8)[2].shape == (3, 32)
    reloaded.tokenizer.pad_token, reloaded.tokenizer.eos_token = None, None
    reloaded.save(str(tmp_path / "neither"))
    with pytest.raises(EmbedbenchError, match="neither a padding nor an end-of-sequence token"):
        load_model(tmp_path / "neither", "cpu")


@needs_data
@pytest.mark.slow
def test_the_two_stage_recipe_trains_stage_two_from_stage_one_under_one_parent(tiny_decoder, scifact_slice,
                                                                               tmp_path):
    run_main("train", "-m", "experiment=nv_embed_two_stage", f"model.name_or_path={tiny_decoder}", "model.lora.r=4",
             "model.latent_attention.latents=16", "model.latent_attention.heads=2", f"data.root={scifact_slice}",
             f"data.sources.scifact.root={scifact_slice}", "data.sources.scifact.negatives=null", "trainer=debug",
             "eval.max_pairs=50", "eval.max_queries=10", "eval.max_docs=100", f"hydra.sweep.dir={tmp_path / 'sweep'}",
             cwd=tmp_path)
    runs = mlflow_runs(tmp_path)
    [parent] = [r for r in runs if r.data.tags.get("embedbench.role") == "sweep"]
    stages = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(stages) == 2 and all(r.info.status == "FINISHED" for r in runs)
    [second] = [r for r in stages if r.data.params["trainer.init_from"] == "previous"]
    assert second.data.params["model.name_or_path"] == str((tmp_path / "sweep" / "0" / "model").resolve())
    assert second.data.params["data.sources.banking77.in_batch_negatives"] == "False"
    assert "mteb_lite/average" in second.data.metrics
    proc = run_main("train", "+stage=blend", f"model.name_or_path={tiny_decoder}", cwd=tmp_path, check=False)
    assert "trainer.init_from=previous: a later stage of a sweep" in proc.stderr
