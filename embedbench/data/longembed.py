"""LongEmbed's two synthetic tasks, generated here: retrieval where the answer sits anywhere in a long document.

- passkey (personalised passkey retrieval): each document is filler text ("The grass is green. The sky
  is blue. ...") with one sentence giving a person's five-digit pass key; a query asks for one person's key.
- needle (needle retrieval): each document is a run of real prose (the haystack) with one invented fact
  inserted; a query asks about that fact.

Per kind and length: ``docs`` documents, the first ``queries`` of them asked about, one relevant document
per query; the inserted sentence sits at a uniformly random sentence boundary, so most of it lies beyond a
short window. Lengths count tokens of all-MiniLM-L6-v2's WordPiece vocabulary (the embedded model's, so a
task is the same whichever model scores it), special tokens included. Everything is drawn from
``random.Random(f"{seed}-{kind}-{tokens}")``: the same seed gives the same tasks.
"""
from __future__ import annotations

import random
import re
from functools import cache

from embedbench.data.beir import BeirDataset
from embedbench.errors import EmbedbenchError

FILLER = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
FIRST = ("Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kavya",
         "Lars", "Maya", "Nikolai", "Olga", "Pedro", "Quinn", "Rosa", "Samir", "Tove", "Umar", "Vera", "Wen",
         "Ximena", "Yusuf", "Zofia")
LAST = ("Abbott", "Bianchi", "Castro", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova", "Jensen",
        "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quispe", "Rossi", "Sato", "Tanaka",
        "Urban", "Varga", "Weber", "Xu", "Yilmaz", "Zhang")
# (fact, question) templates for needles, each about the document's own person (so one document answers);
# the other slots are drawn from the lists below
NEEDLES = (
    ("{person} says the best thing to do in {place} is {activity}.",
     "What does {person} say is the best thing to do in {place}?"),
    ("The secret ingredient in {person}'s {dish} is {ingredient}.",
     "What is the secret ingredient in {person}'s {dish}?"),
    ("{person} keeps the spare key of the {building} under {hiding}.",
     "Where does {person} keep the spare key of the {building}?"),
    ("The {building} in {place} was painted {colour} by {person}.",
     "What colour did {person} paint the {building} in {place}?"),
)
SLOTS = {
    "place": ("Lisbon", "Kyoto", "Nairobi", "Reykjavik", "Oaxaca", "Tallinn", "Hobart", "Quebec", "Cusco", "Tbilisi"),
    "activity": ("rowing on the river at dawn", "eating dumplings at the night market", "reading in the old library",
                 "watching the ferries from the pier", "climbing the hill behind the station",
                 "listening to the street bands", "swimming in the cold lake"),
    "dish": ("lentil soup", "plum cake", "fish stew", "pumpkin bread", "bean chili", "rice pudding"),
    "ingredient": ("smoked paprika", "a spoon of honey", "toasted fennel seeds", "grated lemon peel",
                   "a pinch of cardamom", "black garlic"),
    "building": ("boathouse", "lighthouse", "greenhouse", "observatory", "bakery", "workshop"),
    "hiding": ("a blue flowerpot", "the third stone step", "a loose roof tile", "the rusty mailbox",
               "a wooden owl"),
    "colour": ("saffron yellow", "teal", "brick red", "lavender", "forest green", "pale orange"),
}
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@cache
def tokenizer():
    from transformers import AutoTokenizer

    from embedbench.embedding.sources import resolve_model_path

    return AutoTokenizer.from_pretrained(resolve_model_path("default")[0])


def token_counts(sentences: list[str]) -> list[int]:
    ids = tokenizer()(sentences, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False,
                      verbose=False)["input_ids"]
    return [len(row) for row in ids]


def haystack_sentences(texts: list[str]) -> tuple[list[str], list[int]]:
    """Every sentence of ``texts`` with its token count: what needle documents are cut from."""
    sentences = [s.strip() for text in texts for s in SENTENCE_END.split(text) if s.strip()]
    if not sentences:
        raise EmbedbenchError("longembed: the haystack has no text")
    return sentences, token_counts(sentences)


def _names(rng: random.Random, n: int) -> list[str]:
    pool = [f"{first} {last}" for first in FIRST for last in LAST]
    if n > len(pool):
        raise EmbedbenchError(f"longembed: at most {len(pool)} documents per passkey task, {n} asked")
    return rng.sample(pool, n)


def _needle(rng: random.Random, person: str) -> tuple[str, str]:
    fact, question = rng.choice(NEEDLES)
    values = {slot: rng.choice(choices) for slot, choices in SLOTS.items()}
    return fact.format(person=person, **values), question.format(person=person, **values)


def _document(rng: random.Random, sentences: list[str], counts: list[int], budget: int, inserted: str,
              start: int | None) -> str:
    """Sentences from ``start`` (wrapping round; None: the filler over and over) up to ``budget`` tokens, with
    ``inserted`` at a random sentence boundary."""
    body, used, i = [], 0, 0 if start is None else start
    while True:
        count = counts[i % len(counts)]
        if used + count > budget:
            break
        body.append(sentences[i % len(sentences)])
        used, i = used + count, i + 1
    body.insert(rng.randint(0, len(body)), inserted)
    return " ".join(body)


def synthetic_task(kind: str, tokens: int, docs: int, queries: int, seed: int,
                   haystack: tuple[list[str], list[int]] | None = None) -> BeirDataset:
    """One LongEmbed synthetic task: ``kind`` passkey or needle, documents of about ``tokens`` tokens."""
    if not 0 < queries <= docs:
        raise EmbedbenchError(f"longembed: need 0 < queries ({queries}) <= docs ({docs})")
    rng = random.Random(f"{seed}-{kind}-{tokens}")
    people = _names(rng, docs)
    if kind == "passkey":
        sentences = SENTENCE_END.split(FILLER)
        inserted = []
        for person in people:
            key = rng.randint(10000, 99999)
            inserted.append((f"{person}'s pass key is {key}. Remember it. {key} is the pass key of {person}.",
                             f"What is the pass key for {person}?"))
    elif kind == "needle":
        if haystack is None:
            raise EmbedbenchError("longembed: needle tasks need a haystack text")
        sentences = haystack[0]
        inserted = [_needle(rng, person) for person in people]
    else:
        raise EmbedbenchError(f"longembed: kind={kind}: choose passkey or needle")
    counts = token_counts(sentences) if kind == "passkey" else haystack[1]
    extra = token_counts([fact for fact, _ in inserted])
    corpus, asked = {}, {}
    for i, ((fact, question), fact_tokens) in enumerate(zip(inserted, extra)):
        start = None if kind == "passkey" else rng.randrange(len(sentences))
        text = _document(rng, sentences, counts, max(0, tokens - 2 - fact_tokens), fact, start)
        corpus[f"{kind}{tokens}-d{i}"] = {"title": "", "text": text}
        if i < queries:
            asked[f"{kind}{tokens}-q{i}"] = question
    qrels = {qid: {f"{kind}{tokens}-d{qid.rsplit('-q', 1)[1]}": 1} for qid in asked}
    return BeirDataset(f"{kind}_{tokens}", corpus, asked, qrels)
