"""NV-Embed's latent-attention pooling, as a sentence-transformers module: the token states attend to a
trainable latent array (multi-head cross-attention, the tokens as queries, the latents as keys and values),
then an MLP, each with a residual and a layer norm before it, then a mean over the real tokens (less a
prompt's, with ``include_prompt=False``, as NV-Embed leaves its instructions out). Saved and loaded with the
model like any sentence-transformers module, so ``SentenceTransformer(path)`` pools the same.
"""
from __future__ import annotations

from typing import Any

import torch
from sentence_transformers.base.modules.module import Module
from sentence_transformers.sentence_transformer.modules import Pooling
from torch import nn


class LatentAttentionPooling(Module):
    config_keys: list[str] = ["embedding_dimension", "latents", "heads", "mlp_ratio", "include_prompt"]

    def __init__(self, embedding_dimension: int, latents: int = 512, heads: int = 8, mlp_ratio: int = 4,
                 include_prompt: bool = True):
        super().__init__()
        self.embedding_dimension, self.latents = embedding_dimension, latents
        self.heads, self.mlp_ratio, self.include_prompt = heads, mlp_ratio, include_prompt
        self.latent_array = nn.Parameter(torch.randn(latents, embedding_dimension) * embedding_dimension ** -0.5)
        self.token_norm = nn.LayerNorm(embedding_dimension)
        self.latent_norm = nn.LayerNorm(embedding_dimension)
        self.attention = nn.MultiheadAttention(embedding_dimension, heads, batch_first=True)
        self.mlp_norm = nn.LayerNorm(embedding_dimension)
        self.mlp = nn.Sequential(nn.Linear(embedding_dimension, mlp_ratio * embedding_dimension), nn.GELU(),
                                 nn.Linear(mlp_ratio * embedding_dimension, embedding_dimension))

    def forward(self, features: dict[str, Any], **kwargs) -> dict[str, Any]:
        tokens, mask = features["token_embeddings"], features["attention_mask"]
        latents = self.latent_norm(self.latent_array).expand(tokens.shape[0], -1, -1)
        attended, _ = self.attention(self.token_norm(tokens), latents, latents, need_weights=False)
        states = tokens + attended
        states = states + self.mlp(self.mlp_norm(states))
        prompt_length = features.get("prompt_length")  # an int, or one per text all equal (as Pooling takes it)
        if not self.include_prompt and prompt_length is not None:
            # the positions sentence-transformers' own pooling leaves out, left padding included
            mask = Pooling._exclude_prompt_from_mask(mask, int(torch.as_tensor(prompt_length).flatten()[0]))
        weights = mask.unsqueeze(-1).to(states.dtype)
        features["sentence_embedding"] = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return features

    def get_embedding_dimension(self) -> int:
        return self.embedding_dimension

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        self.save_torch_weights(output_path, safe_serialization=safe_serialization)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", token: bool | str | None = None,
             cache_folder: str | None = None, revision: str | None = None, local_files_only: bool = False,
             **kwargs) -> LatentAttentionPooling:
        hub = {"subfolder": subfolder, "token": token, "cache_folder": cache_folder, "revision": revision,
               "local_files_only": local_files_only}
        module = cls(**cls.load_config(model_name_or_path=model_name_or_path, **hub))
        return cls.load_torch_weights(model_name_or_path=model_name_or_path, model=module, **hub)
