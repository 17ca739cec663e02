"""Unlabeled text as it is (``format: text``, for masked-LM pre-training), or made into positive pairs (no
judgements needed):
- ``mirror`` (Mirror-BERT, Liu et al. 2021): a text and itself with one random span of ``span`` words
  masked; dropout, on during training, makes the two encodings differ further;
- ``cropping`` (Contriever, Izacard et al. 2022): two independent random crops of one text, each a
  contiguous run of ``min_ratio``..``max_ratio`` of its words.
Texts come from ``data.text_file`` (one per line) or, when that is null, the BEIR folder's corpus.
"""
from __future__ import annotations

import random

from datasets import Dataset

from embedbench.data.beir import collection_file, load_corpus, resolve_root, title_and_text
from embedbench.data.files import data_file, text_lines
from embedbench.errors import at


def unlabeled_texts(data_cfg) -> list[str]:
    if data_cfg.text_file:
        path = data_file(data_cfg.text_file, f"data.{data_cfg.name}.text_file")
        if not path.is_file():
            raise at(path, None, "file not found")
        texts = [line.strip() for line in text_lines(path) if line.strip()]
        if not texts:
            raise at(path, None, "no text")
        return texts
    root = resolve_root(data_cfg.name, data_cfg.root, data_cfg.url, data_cfg.md5)
    corpus = load_corpus(collection_file(root, "corpus"))
    return [title_and_text(doc["title"], doc["text"]) for doc in corpus.values()]


def masked_span(text: str, rng: random.Random, span: int, mask_token: str) -> str:
    words = text.split()
    if len(words) <= span:
        return text
    start = rng.randrange(len(words) - span + 1)
    return " ".join(words[:start] + [mask_token] * span + words[start + span:])


def random_crop(text: str, rng: random.Random, min_ratio: float, max_ratio: float) -> str:
    words = text.split()
    length = max(1, round(len(words) * rng.uniform(min_ratio, max_ratio)))
    start = rng.randrange(len(words) - length + 1) if len(words) > length else 0
    return " ".join(words[start:start + length])


def self_supervised_pairs(data_cfg, max_examples: int | None, seed: int) -> Dataset:
    texts = unlabeled_texts(data_cfg)
    texts = texts[:max_examples] if max_examples else texts
    rng = random.Random(seed)
    if data_cfg.format == "mirror":
        pairs = [(text, masked_span(text, rng, data_cfg.span, data_cfg.mask_token)) for text in texts]
    else:
        lo, hi = data_cfg.min_ratio, data_cfg.max_ratio
        pairs = [(random_crop(text, rng, lo, hi), random_crop(text, rng, lo, hi)) for text in texts]
    return Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})


def text_table(data_cfg, max_examples: int | None) -> Dataset:
    texts = unlabeled_texts(data_cfg)
    return Dataset.from_dict({"text": texts[:max_examples] if max_examples else texts})
