"""Model loading and the one-pass, all-layer encoder.

One transformer forward with ``output_hidden_states=True`` yields every
layer; each requested layer goes through the model's own pooling head (the
sentence-transformers modules after the transformer, minus Normalize: the
views re-normalise a normalising model's cuts themselves). Training losses
and evaluation both call :meth:`LayerEncoder.pooled`, so the two can never
disagree about a view. A static embedding model (no transformer) is one layer.
"""
from __future__ import annotations

import functools
import inspect
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from embedbench.embedding.heads import (
    SAVED_BIDIRECTIONAL,
    make_bidirectional,
    set_include_prompt,
    set_padding_side,
    set_pooling,
)
from embedbench.embedding.long import EXTENSIONS, SAVED_WINDOW, extend_window
from embedbench.embedding.prompts import pools_prompt
from embedbench.embedding.runtimes import OpenVinoRuntime, Runtime, resolve_backend, run_batches, torch_runtime
from embedbench.embedding.sources import loaded_bytes, model_folder, resolve_model_path
from embedbench.embedding.views import SIMILARITIES, ViewSet, build_views
from embedbench.errors import EmbedbenchError
from embedbench.memory import available_bytes, available_text

log = logging.getLogger("embedbench")

WEIGHT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "auto": "auto"}
BUDGET_LENGTH = 512  # a batch's token budget counts texts of at most this length (BERT's full length)
STATIC_BATCH = 1024  # texts per batch of a static model: a lookup and a mean each, so batches can be large


def resolve_device(name: str = "auto") -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EmbedbenchError(f"device={name}: CUDA is not available on this machine")
    return name


def native_bf16(device: str) -> bool:
    """Whether bf16 arithmetic runs natively on ``device``: CUDA, or a CPU with AVX512-BF16 (which AMX CPUs
    have too); elsewhere bf16 is emulated and slower than fp32."""
    if device.startswith("cuda"):
        return True
    supported = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # absent on builds without x86 checks
    return device == "cpu" and supported is not None and bool(supported())


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` is bf16 on CUDA and fp32 elsewhere (fp32 is the reference on CPU)."""
    if precision == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    return str(precision)


def resolve_batch_size(batch_size, device: str) -> int:
    """``auto``: 16 full-length texts per batch on CPU, where a 4k-token batch's activations stay in cache
    (docs/results/encoding.md compares it with 32), and 128 on CUDA, where large batches fill the GPU."""
    if batch_size == "auto":
        return 128 if device.startswith("cuda") else 16
    return int(batch_size)


def resolve_encoding(encode, device: str) -> tuple[str, str]:
    """(precision, backend) that an ``encode`` config means on ``device``."""
    precision = resolve_precision(encode.precision, device)
    return precision, resolve_backend(str(encode.backend), precision, device)


def load_model(name_or_path: str, device: str, max_seq_length: int | None = None, trust_remote_code: bool = False,
               pooling: str | None = None, bidirectional: bool = False, padding_side: str | None = None,
               latent_attention=None, long: str = "truncate", long_length: int = 4096, long_pooling: str = "mean",
               dtype: str = "fp32", similarity: str | None = None, include_prompt: bool | None = None):
    """The sentence-transformers model, its weights in ``dtype`` (``model.dtype``; transformers would keep a
    bf16 checkpoint in bf16), with ``model.pooling``, ``include_prompt``, ``bidirectional``, ``padding_side``
    and a position extension (``model.long``) applied; chunking (``long=chunk``) is the :class:`Embedder`'s.
    A model saved without its causal mask or with a rotary extension (marked in its config) gets them again."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer

    path, local = resolve_model_path(str(name_or_path))
    if local:
        os.environ["HF_HUB_OFFLINE"] = "1"  # local weights must never trigger a hub lookup
    check_memory(name_or_path, path, local, device, dtype)
    kind = saved_model_type(path)
    if kind != "SentenceTransformer":  # sentence-transformers would load only its transformer, mean-pooled
        raise EmbedbenchError(f"model.name_or_path={name_or_path}: a sentence-transformers {kind}, not a "
                              "dense embedder (SentenceTransformer); it would be scored as its bare transformer")
    try:
        # safetensors only: a pickled checkpoint can run code when loaded
        model = SentenceTransformer(path, device=device, trust_remote_code=trust_remote_code or own_modules(path),
                                    model_kwargs={"use_safetensors": True, "dtype": WEIGHT_DTYPES[str(dtype)]})
    except (OSError, ValueError) as exc:  # transformers' words for a missing file, an unknown or untrusted model
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "trust_remote_code" in str(exc) or "custom code" in first:
            first = "it runs code of its own; set model.trust_remote_code=true if you trust it"
        raise EmbedbenchError(f"model.name_or_path={name_or_path}: cannot load ({first})") from exc
    if similarity:
        model.similarity_fn_name = str(similarity)
    if not isinstance(model[0], Transformer) and not is_static(model):  # a router, word vectors, CLIP...
        raise EmbedbenchError(f"model.name_or_path={name_or_path}: its first module is {type(model[0]).__name__}; "
                              "embedbench encodes through a transformer (or a StaticEmbedding model)")
    if is_static(model):
        settings = {"model.max_seq_length": max_seq_length, "model.long": str(long) != "truncate" and long,
                    "model.pooling": pooling, "model.bidirectional": bidirectional, "model.padding_side": padding_side,
                    "model.include_prompt": None if include_prompt is None else str(include_prompt).lower()}
        for key, value in settings.items():
            if value:
                raise EmbedbenchError(f"{key}={value}: {name_or_path} is a static embedding model (a mean of token "
                                      "vectors, no transformer), which the setting does not apply to")
        return model
    config = model[0].auto_model.config
    saved_window = getattr(config, SAVED_WINDOW, None)
    if saved_window:  # trained with a rotary extension: the frequencies loaded are the original's
        config.max_position_embeddings = int(saved_window["positions"])
        if str(long) not in EXTENSIONS:
            log.info("%s: extended to %s positions by %s when trained, and again now", name_or_path,
                     saved_window["length"], saved_window["long"])
            long, long_length = saved_window["long"], saved_window["length"]
    if max_seq_length:
        model.max_seq_length = int(max_seq_length)
    if str(long) in EXTENSIONS:
        extend_window(model, str(long), int(long_length))
    if pooling:
        set_pooling(model, pooling, latent_attention)
    if include_prompt is not None:
        set_include_prompt(model, bool(include_prompt))
    if not bidirectional and getattr(config, SAVED_BIDIRECTIONAL, False):
        log.info("%s: trained without its causal mask, which is removed again", name_or_path)
        bidirectional = True
    if bidirectional:
        make_bidirectional(model[0].model)
    if padding_side:
        set_padding_side(model, padding_side)
    tokenizer = model.tokenizer
    if tokenizer.pad_token is None:  # decoder LLMs often ship none; their embedders pad with end-of-sequence
        if tokenizer.eos_token is None:
            raise EmbedbenchError(f"model.name_or_path={name_or_path}: its tokenizer has neither a padding nor an "
                                  "end-of-sequence token to pad batches with")
        tokenizer.pad_token = tokenizer.eos_token
    return model


def check_memory(name_or_path: str, path: str, local: bool, device: str, dtype: str) -> None:
    """Stop in one line where a model's weights, loaded on the CPU in ``dtype``, would not fit in the memory
    left, rather than have the kernel kill the run while it loads them."""
    folder = model_folder(path, local) if device == "cpu" else None
    if folder is None:
        return
    value_bytes = None if dtype == "auto" else WEIGHT_DTYPES[dtype].itemsize
    need, free = loaded_bytes(folder, value_bytes), available_bytes()
    if need > free:
        smaller = "; model.dtype=bf16 halves fp32 weights" if dtype == "fp32" else ""
        raise EmbedbenchError(f"model.name_or_path={name_or_path}: its weights take {need / 2**30:.1f} GiB as "
                              f"model.dtype={dtype}, and {available_text(free)}{smaller}")


def saved_model_type(path: str) -> str:
    """The class a sentence-transformers model was saved from (SparseEncoder, CrossEncoder...), found where
    sentence-transformers looks; a plain transformers checkpoint, or an older model, is a SentenceTransformer."""
    from sentence_transformers.util.file_io import load_file_path

    found = load_file_path(path, "config_sentence_transformers.json")
    return json.loads(Path(found).read_text()).get("model_type", "SentenceTransformer") if found else \
        "SentenceTransformer"


def is_static(model) -> bool:
    """Whether the model is a bag of token vectors (sentence-transformers' StaticEmbedding: Model2Vec, the
    static-retrieval models) rather than a transformer."""
    from sentence_transformers.sentence_transformer.modules import StaticEmbedding

    return isinstance(model[0], StaticEmbedding)


def own_modules(path: str) -> bool:
    """Whether a local model folder needs no code but sentence-transformers' and embedbench's own (a latent-
    attention head it saved) and no transformers remote code: then loading it trusts nothing new."""
    modules, config = Path(path) / "modules.json", Path(path) / "config.json"
    if not modules.is_file():
        return False
    classes = [entry.get("type", "") for entry in json.loads(modules.read_text())]
    ours = all(c.startswith(("sentence_transformers.", "embedbench.")) for c in classes)
    remote = config.is_file() and "auto_map" in json.loads(config.read_text())
    return ours and any(c.startswith("embedbench.") for c in classes) and not remote


def model_options(model_cfg) -> dict:
    """The :func:`load_model` settings a ``model`` config holds."""
    return {"max_seq_length": model_cfg.max_seq_length, "trust_remote_code": model_cfg.trust_remote_code,
            "pooling": model_cfg.pooling, "bidirectional": model_cfg.bidirectional,
            "padding_side": model_cfg.padding_side, "latent_attention": model_cfg.latent_attention,
            "long": str(model_cfg.long), "long_length": model_cfg.long_length,
            "long_pooling": str(model_cfg.long_pooling), "dtype": str(model_cfg.dtype),
            "similarity": model_cfg.similarity and str(model_cfg.similarity),
            "include_prompt": model_cfg.include_prompt}


def load_encoder(name_or_path: str, device: str, **options) -> LayerEncoder:
    """:func:`load_model` wrapped in a :class:`LayerEncoder` that knows where its weights came from and how
    they were loaded."""
    model = load_model(name_or_path, device, **options)
    kind = StaticEncoder if is_static(model) else LayerEncoder
    return kind(model, resolve_model_path(str(name_or_path))[0], options)


def _weights_state(model: torch.nn.Module) -> tuple:
    # every in-place update (optimiser steps, load_state_dict) bumps a tensor's version counter
    return tuple((id(tensor), tensor._version) for tensor in model.state_dict(keep_vars=True).values())


def _prompt_groups(lengths) -> list[tuple[int, torch.Tensor | None]]:
    """(prompt length, its rows) for a batch: one group, rows None, when every text has the same length."""
    if lengths is None:
        return [(0, None)]
    lengths = torch.as_tensor(lengths).flatten()
    if bool((lengths == lengths[0]).all()):
        return [(int(lengths[0]), None)]
    return [(int(length), (lengths == length).nonzero().flatten()) for length in lengths.unique()]


class LayerEncoder:
    """Pooled sentence embeddings of any set of layers from one forward pass.

    ``source``: the folder (or hub name) the model's weights were loaded from, if any; ``options``: the
    :func:`load_model` settings it was loaded with, which a copy in another process needs too.
    """

    def __init__(self, model, source: str | None = None, options: dict | None = None):
        from sentence_transformers.base.modules import Normalize

        self.model, self.options = model, dict(options or {})
        self._prompt_tokens: dict[str, int] = {}
        self.saved_to(source)
        self.transformer = model[0]
        self.heads = [module for module in list(model)[1:] if not isinstance(module, Normalize)]
        self.normalises = any(isinstance(module, Normalize) for module in model)
        # its own output is unit length: not once cut to a saved truncate_dim, as sentence-transformers cuts it
        self.unit_length = self.normalises and not model.truncate_dim

    @functools.cached_property
    def _input_names(self) -> set[str]:
        """The tokenizer's outputs the transformer takes: those its forward names, or all of them for a forward
        that names none but takes ``**kwargs`` (a wrapper's, some remote code's), as sentence-transformers
        passes them."""
        names = {"input_ids", "attention_mask", "token_type_ids"}
        parameters = inspect.signature(self.transformer.model.forward).parameters
        named = names & set(parameters)
        takes_any = any(parameter.kind is inspect.Parameter.VAR_KEYWORD for parameter in parameters.values())
        return named or (names if takes_any else named)

    def saved_to(self, folder: str | None) -> None:
        """Record that ``folder`` holds the weights as they are now."""
        self._source = (folder, _weights_state(self.model) if folder else None)

    @property
    def weights_folder(self) -> str | None:
        """Where to load exactly these weights from (worker processes do), or None once they have changed."""
        folder, state = self._source
        return folder if folder and state == _weights_state(self.model) else None

    @property
    def n_layers(self) -> int:
        return int(self.transformer.model.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        """The pooled embedding's width, as sentence-transformers states it: after a projection (a ``Dense``
        module) or concatenated pooling modes, not the transformer's (``load_model`` sets no truncation)."""
        return int(self.model.get_embedding_dimension() or self.transformer.get_embedding_dimension())

    def views(self, spec) -> ViewSet:
        """The views a ``model.views`` block declares, cut from this encoder and scored as it scores."""
        return build_views(spec, self.n_layers, self.hidden_size, self.unit_length, self.similarity)

    @property
    def similarity(self) -> str:
        """How the model scores a pair: sentence-transformers' ``similarity_fn_name``, cosine or dot."""
        name = str(self.model.similarity_fn_name)
        if name not in SIMILARITIES:
            raise EmbedbenchError(f"the model scores by {name} similarity; embedbench searches by cosine or dot "
                                  "(set model.similarity)")
        return name

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def weights_dtype(self) -> torch.dtype:
        """The dtype the weights were loaded in (``model.dtype``), which torch computes in."""
        return next(self.model.parameters()).dtype

    def pooled(self, features: dict, layers: list[int], through=None) -> dict[int, torch.Tensor]:
        """{layer: pooled (un-normalised) embedding} for tokenised ``features``, with gradients.

        ``through``: the module to run, when it is not the bare model: training passes the trainer's
        (DDP-)wrapped model, whose forward is what synchronises gradients across ranks.
        """
        if through is None:
            return self.pool(self.runtime("fp32", "torch")(features), features, layers)
        return self.pool(self.hidden_states(features, through), features, layers)

    def hidden_states(self, features: dict, through) -> Sequence[torch.Tensor]:
        """Every layer's token states (embeddings first), with gradients, from a forward of ``through``."""
        config = self.transformer.model.config
        config.output_hidden_states = True  # sentence-transformers then returns all_layer_embeddings
        try:
            return through(dict(features))["all_layer_embeddings"]
        finally:
            config.output_hidden_states = False

    def runtime(self, precision: str = "fp32", backend: str = "torch", profile: bool = False,
                streams: bool = True, cache=None, weights_key: str = "") -> Runtime:
        """What maps tokenised features to every layer's hidden states for encoding (embedbench/runtimes.py).

        Build it once per set of texts to encode: the bf16 and OpenVINO ones copy or convert the weights
        as they are now, so a runtime made before a training step does not see that step. ``cache`` and
        ``weights_key`` (the weights' fingerprint): where OpenVINO keeps its converted model.
        """
        backend = resolve_backend(backend, precision, self.device.type)
        model = self.transformer.model
        if backend == "openvino":
            # two lengths, so the traced example batch is padded
            example = self.model.preprocess(["padding", "an example long enough to need the padding"])
            return OpenVinoRuntime(model, self._input_names, example, precision, profile, streams, cache,
                                   weights_key, self.options)
        return torch_runtime(model, self._input_names, torch.bfloat16 if precision == "bf16" else None)

    def pool(self, hidden: Sequence[torch.Tensor], features: dict, layers: list[int]) -> dict[int, torch.Tensor]:
        """{layer: the heads' output} in fp32 whatever precision the transformer ran in. A ``prompt_length``
        in ``features`` (one per text when encoding, one per batch from the trainer's collator) reaches a
        pooling that leaves prompt tokens out, one group of equal lengths at a time as sentence-transformers
        takes one length per call."""
        groups = _prompt_groups(features.get("prompt_length"))
        mask = features["attention_mask"]
        result = {}
        for layer in layers:
            states = hidden[layer].float()
            if len(groups) == 1:
                result[layer] = self._head(states, mask, groups[0][0])
                continue
            pooled = [(rows, self._head(states[rows], mask[rows], length)) for length, rows in groups]
            out = states.new_empty(len(states), pooled[0][1].shape[-1])
            for rows, part in pooled:
                out = out.index_copy(0, rows, part)  # out of place: gradients reach every group
            result[layer] = out
        return result

    def _head(self, states: torch.Tensor, mask: torch.Tensor, prompt_length: int) -> torch.Tensor:
        features = {"token_embeddings": states, "attention_mask": mask}
        if prompt_length:
            features["prompt_length"] = prompt_length
        for head in self.heads:
            features = head(features)
        return self._saved_width(features["sentence_embedding"])

    def _saved_width(self, embedding: torch.Tensor) -> torch.Tensor:
        """A model saved with ``truncate_dim`` gives, as sentence-transformers' encode does, its whole output
        (normalised, if it normalises) cut to that width."""
        if not self.model.truncate_dim:
            return embedding
        if self.normalises:
            embedding = torch.nn.functional.normalize(embedding, dim=-1)
        return embedding[..., :self.model.truncate_dim]

    @functools.cached_property
    def excludes_prompt(self) -> bool:
        return not pools_prompt(self.model)

    def prompt_tokens(self, prompt: str) -> int:
        """The prompt's tokens as sentence-transformers counts them for a pooling that leaves them out: the
        tokenised prompt, special tokens included, less a special token at its end (nothing for no prompt)."""
        if prompt and prompt not in self._prompt_tokens:
            ids = self.model.preprocess([prompt])["input_ids"][0]
            self._prompt_tokens[prompt] = len(ids) - (int(ids[-1]) in set(self.model.tokenizer.all_special_ids))
        return self._prompt_tokens.get(prompt, 0)

    def token_lengths(self, texts: list[str], chunk: int = 8192) -> np.ndarray:
        """Tokens per text after truncation: what a batch really costs."""
        tokenizer, limit = self.model.tokenizer, self.model.max_seq_length
        lengths = []
        for start in range(0, len(texts), chunk):
            ids = tokenizer(texts[start:start + chunk], truncation=True, max_length=limit,
                            return_attention_mask=False, return_token_type_ids=False)["input_ids"]
            lengths.extend(map(len, ids))
        return np.asarray(lengths, dtype=np.int64)

    def batches(self, texts: list[str], batch_size: int, max_batch: int = 1024,
                lengths: np.ndarray | None = None) -> list[np.ndarray]:
        """Index batches in decreasing token length, each holding about ``batch_size`` texts of the model's
        full length, or of ``BUDGET_LENGTH`` tokens for a longer-context model.

        Sorting by tokens (not characters) keeps padding near zero; the token budget lets short texts
        (queries, STS sentences) travel in large batches instead of many small, slow matmuls, and keeps a
        batch of long documents for an 8k- or 32k-token model to the memory of ``batch_size`` 512-token texts.
        """
        lengths = self.token_lengths(texts) if lengths is None else lengths
        order = np.argsort(-lengths, kind="stable")
        budget = batch_size * min(self.model.max_seq_length or BUDGET_LENGTH, BUDGET_LENGTH)
        batches, start = [], 0
        while start < len(order):
            longest = max(int(lengths[order[start]]), 1)  # sorted: the first text is the longest
            size = min(max(1, budget // longest), max_batch)
            batches.append(order[start:start + size])
            start += size
        return batches

    def _features(self, texts: list[str]) -> dict:
        features = self.model.preprocess(texts)
        if self.excludes_prompt:
            features["prompt_length"] = torch.tensor([self.prompt_tokens(getattr(text, "prompt", ""))
                                                      for text in texts])
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}

    @torch.inference_mode()
    def encode(self, texts: list[str], layers: list[int], batch_size: int = 16, precision: str = "fp32",
               desc: str = "encode", backend: str = "torch", runtime: Runtime | None = None,
               lengths: np.ndarray | None = None, progress: bool = True) -> dict[int, torch.Tensor]:
        """{layer: float32 CPU tensor [len(texts), hidden]}, rows in input order.

        ``runtime``: one from :meth:`runtime`, to reuse across calls (else one is built for this call).
        ``lengths``: the texts' :meth:`token_lengths`, when the caller has them already.
        ``progress``: off where another process shows the bar for all of them."""
        self.model.eval()
        runtime = runtime or self.runtime(precision, backend)
        result = {layer: torch.empty(len(texts), self.hidden_size) for layer in layers}
        lengths = self.token_lengths(texts) if lengths is None else lengths
        batches = self.batches(texts, batch_size, lengths=lengths)
        # counted in tokens: batches go longest first, so a count of texts would promise far too late an end
        with tqdm(total=int(lengths.sum()), desc=desc, unit="tok", unit_scale=True,
                  disable=not progress or len(batches) < 2) as bar:
            # tokenised lazily: the runtime may tokenise the next batches while earlier ones run
            features = (self._features([texts[i] for i in index]) for index in batches)
            for index, (batch, hidden) in zip(batches, run_batches(runtime, features)):
                pooled = self.pool(hidden, batch, layers)
                rows = torch.from_numpy(index)
                for layer in layers:
                    result[layer][rows] = pooled[layer].float().cpu()
                bar.update(int(lengths[index].sum()))
        return result


class StaticEncoder(LayerEncoder):
    """A static embedding model: its whole output (the mean of a text's token vectors, then its heads) is its
    one layer, cut to any dim as a transformer's layers are. It runs in fp32 on torch whatever ``encode``
    asks: a lookup and a mean, with no transformer for a bf16 copy or OpenVINO to run."""

    @property
    def n_layers(self) -> int:
        return 1

    def runtime(self, precision: str = "fp32", backend: str = "torch", profile: bool = False,
                streams: bool = True, cache=None, weights_key: str = "") -> None:
        return None  # nothing to copy or convert: :meth:`encode` runs the model itself

    def pooled(self, features: dict, layers: list[int], through=None) -> dict[int, torch.Tensor]:
        """{1: the model's output} for tokenised ``features``, with gradients; ``through``: as for a transformer."""
        return {1: self._saved_width((through or self.model)(dict(features))["sentence_embedding"])}

    def token_lengths(self, texts: list[str], chunk: int = 8192) -> np.ndarray:
        encodings = self.model.tokenizer.encode_batch(texts, add_special_tokens=False)  # untruncated, as it reads
        return np.asarray([len(encoding.ids) for encoding in encodings], dtype=np.int64)

    @torch.inference_mode()
    def encode(self, texts: list[str], layers: list[int], batch_size: int = 16, precision: str = "fp32",
               desc: str = "encode", backend: str = "torch", runtime: Runtime | None = None,
               lengths: np.ndarray | None = None, progress: bool = True) -> dict[int, torch.Tensor]:
        """{1: float32 CPU tensor [len(texts), width]}: the texts in input order, each tokenised once. A bag of
        token vectors has no padding for length-sorted batches to save, so nothing counts tokens beforehand."""
        self.model.eval()
        result = torch.empty(len(texts), self.hidden_size)
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not progress or len(texts) <= STATIC_BATCH) as bar:
            for start in range(0, len(texts), STATIC_BATCH):
                batch = texts[start:start + STATIC_BATCH]
                result[start:start + len(batch)] = self.pooled(self._features(batch), [1])[1].float().cpu()
                bar.update(len(batch))
        return {layer: result for layer in layers}
