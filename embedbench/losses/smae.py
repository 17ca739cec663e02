"""Starbucks Masked Autoencoding (SMAE; Zhuang et al., 2024): masked-language-model pre-training of every
(layer, dim) sub-network the model declares, before its Starbucks fine-tune.

For each declared view (layer l, dim d), on text masked at ``mlm_probability``:
- MLM: layer l's token states cut to d predict the masked tokens through the model's masked-LM head. The cut
  states are padded with zeros to full width; the head's first layer is linear, so the zeros drop out and
  this equals slicing its weight to d inputs, as Starbucks does;
- MAE (``mae``): a shallow decoder (the encoder's first ``decoder_layers`` layers, its own copy, sharing the
  word embeddings and head) reconstructs the text masked again, at ``decoder_mlm_probability``, from the
  view's embedding put in place of the first token: the bottleneck RetroMAE and Starbucks train. The
  embedding is the model's own pooling cut to d (BERT's [CLS] for a CLS-pooled model, as in the paper), so
  what the decoder reads is what the fine-tune and evaluation score, before they normalise it.
The loss is the weighted mean over views of (MLM + MAE) / 2. The head comes with the checkpoint where it has
one (BERT, RoBERTa); a sentence encoder saved without one (MiniLM) gets a new head whose output layer is tied
to the word embeddings. This is a sentence-transformers loss module; its head and decoder train with it.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForMaskedLM, DataCollatorForLanguageModeling
from transformers import logging as hf_logging

from embedbench.embedding.views import ViewSet
from embedbench.errors import EmbedbenchError
from embedbench.losses.views import checked


def masked_lm_head(encoder) -> nn.Module:
    """The masked-LM head of the encoder's checkpoint, its output layer tied to the encoder's word embeddings."""
    if not hasattr(encoder.transformer, "model"):
        raise EmbedbenchError(f"loss=smae: {type(encoder.transformer).__name__} is not a transformer to pre-train")
    hf_model = encoder.transformer.model
    source = hf_model.config._name_or_path
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a checkpoint without a head warns that one is new: the docstring says so
    try:
        mlm = AutoModelForMaskedLM.from_pretrained(source, config=copy.deepcopy(hf_model.config))
    except (ValueError, OSError) as exc:
        raise EmbedbenchError(f"loss=smae: {source} has no masked-LM form in transformers ({exc})") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    parts = [m for name, m in mlm.named_children()
             if name != mlm.base_model_prefix and not isinstance(m, nn.modules.loss._Loss)]
    if len(parts) != 1:
        raise EmbedbenchError(f"loss=smae: {type(mlm).__name__}'s head is {len(parts)} modules; SMAE takes a head of "
                              "one module (BERT's cls, RoBERTa's lm_head)")
    output = mlm.get_output_embeddings()
    if output is not None and getattr(hf_model.config, "tie_word_embeddings", True):
        output.weight = hf_model.get_input_embeddings().weight
    return parts[0]


def shallow_decoder(encoder, layers: int) -> nn.Module:
    """The encoder's first ``layers`` layers as their own model, reading the encoder's word embeddings."""
    hf_model = encoder.transformer.model
    config = copy.deepcopy(hf_model.config)
    config.num_hidden_layers = layers
    decoder = AutoModel.from_config(config)
    # BERT's pooler may be new: the decoder's token states do not pass through it
    missing = [key for key in decoder.load_state_dict(hf_model.state_dict(), strict=False).missing_keys
               if not key.startswith("pooler.")]
    if missing:
        raise EmbedbenchError(f"loss=smae: the decoder finds no encoder weights for {', '.join(missing[:3])}")
    decoder.set_input_embeddings(hf_model.get_input_embeddings())
    return decoder


class SMAE(nn.Module):
    def __init__(self, encoder, views: ViewSet, mlm_probability: float = 0.2, decoder_mlm_probability: float = 0.4,
                 mae: bool = True, decoder_layers: int = 1, seed: int = 0, on_nonfinite: str = "stop"):
        super().__init__()
        self.model = encoder.model  # the trainer swaps in its DDP-wrapped model here; forward runs through it
        self.encoder = encoder
        self.views = views
        self.weights = {view: weight for view, weight in views.weights if weight}
        self.head = masked_lm_head(encoder)
        self.decoder = shallow_decoder(encoder, decoder_layers) if mae else None
        tokenizer = encoder.transformer.tokenizer
        if tokenizer.mask_token is None:
            raise EmbedbenchError(f"loss=smae: {encoder.transformer.model.config._name_or_path}'s tokenizer has no "
                                  "mask token")
        self.special_ids = torch.tensor(sorted(tokenizer.all_special_ids))
        # separate generators: the decoder's masks do not shift with the encoder's probability
        self.masking = DataCollatorForLanguageModeling(tokenizer, mlm_probability=mlm_probability, seed=seed)
        self.decoder_masking = DataCollatorForLanguageModeling(tokenizer, mlm_probability=decoder_mlm_probability,
                                                               seed=seed + 1)
        for masking in (self.masking, self.decoder_masking):
            masking.create_rng("pt")  # called for its masking alone, the collator would never seed its generator
        self.on_nonfinite = on_nonfinite
        self.batches = 0
        self._terms: dict[str, list[float]] = {}

    def mask(self, masking: DataCollatorForLanguageModeling, input_ids: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(masked ids, labels: -100 where nothing is to predict), drawn on the CPU from the seeded generator."""
        ids = input_ids.cpu()
        masked, labels = masking.torch_mask_tokens(ids.clone(), torch.isin(ids, self.special_ids))
        return masked.to(input_ids.device), labels.to(input_ids.device)

    def predict(self, states: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the head over the positions with a label; ``states`` may be cut below full width."""
        chosen = labels != -100
        picked = states[chosen]
        picked = F.pad(picked, (0, self.views.hidden_size - picked.shape[-1]))
        return F.cross_entropy(self.head(picked), labels[chosen])

    def reconstruct(self, embedding: torch.Tensor, tokens: torch.Tensor, labels: torch.Tensor,
                    attention_mask: torch.Tensor) -> torch.Tensor:
        """The decoder's loss on ``labels`` from the embedding in the first position and the masked ``tokens``
        (embedded) after it."""
        first = F.pad(embedding, (0, self.views.hidden_size - embedding.shape[-1]))[:, None]
        states = self.decoder(inputs_embeds=torch.cat([first, tokens[:, 1:]], dim=1),
                              attention_mask=attention_mask).last_hidden_state
        return self.predict(states, labels)

    def forward(self, sentence_features, labels=None) -> torch.Tensor:
        if len(sentence_features) != 1:
            raise EmbedbenchError(f"loss=smae: reads one column of text, the training set has "
                                  f"{len(sentence_features)}; use data.format=text")
        features = dict(sentence_features[0])
        original = features["input_ids"]
        features["input_ids"], mlm_labels = self.mask(self.masking, original)
        hidden = self.encoder.hidden_states(features, self.model)
        if self.decoder is not None:  # one decoder input per batch, every view reconstructing it
            pooled = self.encoder.pool(hidden, features, sorted({view.layer for view in self.weights}))
            decoder_ids, decoder_labels = self.mask(self.decoder_masking, original)
            tokens = self.decoder.get_input_embeddings()(decoder_ids)
        terms, total = {}, 0.0
        for view, weight in self.weights.items():
            name = self.views.name(view) or "/full"
            terms[f"/mlm{name}"] = self.predict(hidden[view.layer][..., :view.dim], mlm_labels)
            term = terms[f"/mlm{name}"]
            if self.decoder is not None:
                terms[f"/mae{name}"] = self.reconstruct(pooled[view.layer][..., :view.dim], tokens, decoder_labels,
                                                        features["attention_mask"])
                term = (term + terms[f"/mae{name}"]) / 2
            total = total + weight * term
        total = total / sum(self.weights.values())
        self.batches += 1
        return checked(total, terms, self._terms, self.batches, self.on_nonfinite)

    def pop_terms(self) -> dict[str, float]:
        """Each view's MLM and MAE terms averaged since the last call: ``train/loss/mlm/l1_d32``, ..."""
        terms = {f"train/loss{name}": sum(values) / len(values) for name, values in self._terms.items()}
        self._terms.clear()
        return terms

    def get_config_dict(self) -> dict:
        return {"mlm_probability": self.masking.mlm_probability, "mae": self.decoder is not None,
                "decoder_mlm_probability": self.decoder_masking.mlm_probability,
                "views": {self.views.name(v) or "full": w for v, w in self.weights.items()}}
