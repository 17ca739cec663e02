"""SMAE: the cut states through the head against Starbucks' sliced weights, seeded masking, which weights each
view's terms reach, and a pre-training run whose saved model a fine-tune starts from."""
import json

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from safetensors.torch import load_file

from embedbench.embedding.encoder import LayerEncoder
from embedbench.embedding.views import build_views
from embedbench.losses.smae import SMAE
from tests.helpers import run_main

TEXTS = ["the protein binds the receptor in the membrane", "a cell divides twice before it dies",
         "vitamin d lowers the risk of fractures in older adults", "mice lacking the gene grow normally"]


def smae(tiny_model, pairs, **settings) -> SMAE:
    encoder = LayerEncoder(tiny_model)
    spec = OmegaConf.create({"pairs": pairs, "weights": [1] * len(pairs), "layers": None, "dims": None})
    return SMAE(encoder, build_views(spec, encoder.n_layers, encoder.hidden_size), **settings)


def test_cut_states_through_the_head_equal_starbucks_sliced_weights(tiny_model):
    loss = smae(tiny_model, [[1, 8]])
    torch.manual_seed(0)
    for module in loss.head.modules():  # a new head's LayerNorm starts as the identity: make it matter
        if isinstance(module, torch.nn.LayerNorm):
            torch.nn.init.normal_(module.weight), torch.nn.init.normal_(module.bias)
    states = torch.randn(5, 32)
    transform = loss.head.predictions.transform
    sliced = transform.LayerNorm(transform.transform_act_fn(
        F.linear(states[:, :8], transform.dense.weight[:, :8], transform.dense.bias)))
    expected = loss.head.predictions.decoder(sliced)
    assert torch.allclose(loss.head(F.pad(states[:, :8], (0, 24))), expected, atol=1e-5)
    words = loss.encoder.transformer.model.get_input_embeddings().weight
    assert loss.head.predictions.decoder.weight is words  # tied: the head predicts with the encoder's vocabulary
    assert loss.decoder.get_input_embeddings().weight is words


def test_masking_is_seeded_and_spares_special_tokens(tiny_model):
    ids = tiny_model.preprocess(TEXTS * 200)["input_ids"]
    special = torch.isin(ids, torch.tensor(tiny_model.tokenizer.all_special_ids))
    first, second, other = (smae(tiny_model, [[2, 32]], seed=seed) for seed in (3, 3, 4))
    masked, labels = first.mask(first.masking, ids)
    assert torch.equal(masked, second.mask(second.masking, ids)[0])
    assert not torch.equal(masked, other.mask(other.masking, ids)[0])
    chosen = labels != -100
    assert not (chosen & special).any() and torch.equal(labels[chosen], ids[chosen])
    assert 0.17 < chosen.sum() / (~special).sum() < 0.23  # mlm_probability 0.2
    assert (masked[chosen] == tiny_model.tokenizer.mask_token_id).float().mean() > 0.7  # BERT's 80/10/10
    decoder_chosen = first.mask(first.decoder_masking, ids)[1] != -100
    assert 0.37 < decoder_chosen.sum() / (~special).sum() < 0.43  # decoder_mlm_probability 0.4


def test_a_views_terms_train_its_own_sub_network_and_the_decoder(tiny_model):
    tiny_model.zero_grad(set_to_none=True)  # the model is shared by the session's tests
    loss = smae(tiny_model, [[1, 8]])
    loss([tiny_model.preprocess(TEXTS)]).backward()
    layers = loss.encoder.transformer.model.encoder.layer
    assert all(p.grad is None or not p.grad.any() for p in layers[1].parameters())  # above layer 1: untouched
    assert all(p.grad is not None and p.grad.any() for p in layers[0].attention.parameters())
    assert all(p.grad is not None and p.grad.any() for p in loss.decoder.encoder.parameters())
    assert set(loss.pop_terms()) == {"train/loss/mlm/l1_d8", "train/loss/mae/l1_d8"}
    tiny_model.zero_grad(set_to_none=True)
    without_decoder = smae(tiny_model, [[1, 8], [2, 32]], mae=False)
    without_decoder([tiny_model.preprocess(TEXTS)])
    assert without_decoder.decoder is None and set(without_decoder.pop_terms()) == {
        "train/loss/mlm/l1_d8", "train/loss/mlm/full"}


def test_pretraining_on_a_text_file_saves_the_model_a_fine_tune_starts_from(tmp_path, tiny_model_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(f"{text} in study {i}" for i in range(6) for text in TEXTS) + "\n")
    common = [f"model.name_or_path={tiny_model_path}", "model=starbucks", "model.views.pairs=[[1,8],[2,32]]",
              "model.views.weights=[1,1]", "trainer=debug", "trainer.batch_size=8", "eval=sts", "eval.max_pairs=20"]
    run_main("train", *common, "loss=smae", "data.format=text", f"data.text_file={texts}", "hydra.run.dir=smae",
             cwd=tmp_path)
    result = json.loads((tmp_path / "smae" / "results.json").read_text())
    assert result["config"]["loss"]["mlm_probability"] == 0.2 and "stsb/spearman/l1_d8" in result["metrics"]
    before = load_file(tiny_model_path / "model.safetensors")
    after = load_file(tmp_path / "smae" / "model" / "model.safetensors")
    assert any(not torch.equal(before[key], after[key]) for key in before if ".layer.0." in key)
    run_main("train", *common, "loss=cosent", "data=stsb", f"model.name_or_path={tmp_path / 'smae' / 'model'}",
             "hydra.run.dir=fine_tune", cwd=tmp_path)
    assert "stsb/spearman" in json.loads((tmp_path / "fine_tune" / "results.json").read_text())["metrics"]


def test_smae_and_unlabeled_text_go_together_or_stop_with_one_line(tmp_path, tiny_model_path):
    common = [f"model.name_or_path={tiny_model_path}", "trainer=debug", "eval=sts", "eval.max_pairs=20"]
    for args in (["loss=smae"], ["loss=infonce", "data.format=text"]):
        proc = run_main("train", *common, *args, cwd=tmp_path, check=False)
        assert proc.returncode == 2 and "loss=smae pre-trains on unlabeled text, data.format=text" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_a_roberta_checkpoint_trains_through_its_own_head_and_decoder(tmp_path, tiny_model):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import RobertaConfig, RobertaModel

    torch.manual_seed(0)
    config = RobertaConfig(vocab_size=tiny_model.tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64, pad_token_id=0, max_position_embeddings=64)
    RobertaModel(config, add_pooling_layer=False).save_pretrained(tmp_path)
    tiny_model.tokenizer.save_pretrained(tmp_path)
    roberta = SentenceTransformer(modules=[Transformer(str(tmp_path), max_seq_length=32), Pooling(32, "cls")])
    loss = smae(roberta, [[1, 8], [2, 32]])
    assert type(loss.head).__name__ == "RobertaLMHead"
    loss([roberta.preprocess(TEXTS)]).backward()
    assert loss.head.dense.weight.grad[:, 8:].any() and loss.decoder.encoder.layer[0].output.dense.weight.grad.any()
