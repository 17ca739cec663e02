"""Prompts: the text a model expects before each input, by side (query or document), and a task's instruction
for models trained with instructions. A prompt is a prefix of the text, as sentence-transformers applies
one, so the embedding cache and every runtime see the text exactly as the model encodes it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# mteb's names for the symmetric task types, under which a model's prompts for them are saved and read
SYMMETRIC_TYPES = ("STS", "Classification", "Clustering", "PairClassification")
# mteb's names for the task types with queries and documents: a model's prompt for one side of such a type is
# saved under "<type>-<side>", for both sides under the type's name
ASYMMETRIC_TYPES = ("Retrieval", "Reranking")
# a side of a task: queries, documents, or the texts of a symmetric task, which a task names by its type; a
# retrieval or reranking task names its sides by mteb's "<type>-<side>"
Side = Literal["query", "document", "symmetric", "STS", "Classification", "Clustering", "PairClassification",
               "Retrieval-query", "Retrieval-document", "Reranking-query", "Reranking-document"]
QUERY: Side = "query"
DOCUMENT: Side = "document"
SYMMETRIC: Side = "symmetric"  # both texts of a pair, or every text of a classification or clustering task
STS, CLASSIFICATION, CLUSTERING, PAIR_CLASSIFICATION = SYMMETRIC_TYPES  # the same, for a task of that type
RETRIEVAL_QUERY: Side = "Retrieval-query"
RETRIEVAL_DOCUMENT: Side = "Retrieval-document"
RERANKING_QUERY: Side = "Reranking-query"
RERANKING_DOCUMENT: Side = "Reranking-document"
# the names sentence-transformers models give the document side in config_sentence_transformers.json
DOCUMENT_NAMES = ("document", "passage", "corpus", "doc")
# the transformers config key that keeps a trained model's prompt template (sentence-transformers saves prompts,
# not templates; transformers keeps a config's unknown keys)
SAVED_TEMPLATE = "embedbench_prompt_template"


def base_side(side: str) -> Side:
    """query or document for any side that is one ("Reranking-document" too), else symmetric."""
    own = side.rpartition("-")[2]
    return own if own in (QUERY, DOCUMENT) else SYMMETRIC


class Prompted(str):
    """A text with the prompt it starts with, for a model whose pooling leaves the prompt's tokens out
    (``include_prompt=false``): the encoder counts the prompt's tokens as sentence-transformers does. A plain
    ``str`` everywhere else, so the texts of one encoding pass may carry different prompts."""

    prompt: str

    def __new__(cls, prompt: str, text: str) -> Prompted:
        prompted = super().__new__(cls, prompt + text)
        prompted.prompt = prompt
        return prompted

    def __reduce__(self):  # to device workers and other ranks with its prompt
        return Prompted, (self.prompt, str(self)[len(self.prompt):])


@dataclass(frozen=True)
class Prompts:
    query: str = ""
    document: str = ""
    symmetric: str = ""
    template: str | None = None  # "...{instruction}...{text}": queries of tasks that give an instruction
    pooled: bool = True  # False: the model's pooling leaves the prompt's tokens out; texts are then Prompted
    # (task type, prompt): a symmetric task type's own prompt where the model ships one (nomic-embed's
    # "classification: ", "clustering: "), in place of ``symmetric``; and ("<type>-<side>", prompt): a retrieval or
    # reranking side's own (EmbeddingGemma's "Reranking", which mteb gives reranking's documents too), in place of
    # ``query`` or ``document``
    typed: tuple[tuple[str, str], ...] = ()

    def prefix(self, side: Side, instruction: str | None = None) -> str:
        own = base_side(side)
        if own != DOCUMENT and instruction and self.template:
            return self.template.format(instruction=instruction, text="")
        return dict(self.typed).get(side, self.query if own == QUERY else self.document if own == DOCUMENT
                                    else self.symmetric)

    def params(self) -> dict[str, str]:
        """The prompts as MLflow params: what the model saw, also where the config said "the model's own"."""
        return {"prompts.query": self.query, "prompts.document": self.document, "prompts.symmetric": self.symmetric,
                **{f"prompts.{kind}": prompt for kind, prompt in self.typed},
                **({"prompts.template": self.template} if self.template else {}),
                **({} if self.pooled else {"prompts.pooled": "false"})}

    def apply(self, texts: Sequence[str], side: Side, instruction: str | None = None) -> list[str]:
        prefix = self.prefix(side, instruction)
        if not prefix:
            return list(texts)
        return [prefix + text for text in texts] if self.pooled else [Prompted(prefix, text) for text in texts]


def shipped_prompts(model) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
    """(query, document, symmetric, typed) prompts a sentence-transformers model ships: its default prompt
    where a side has none; for symmetric tasks, its STS prompt, else the query prompt; the prompts it ships
    for a symmetric task type under mteb's name (or that name in lower case, as nomic-embed's) where they
    differ from the symmetric one; and for each side of a retrieval or reranking task, the prompt mteb reads
    for it ("<type>-<side>", else the type's) where it differs from that side's."""
    shipped = dict(getattr(model, "prompts", None) or {})
    default = shipped.get(getattr(model, "default_prompt_name", None) or "", "")
    # sentence-transformers fills "query" and "document" with "" when a model ships none under those names
    document = next((shipped[name] for name in DOCUMENT_NAMES if shipped.get(name)), default)
    query = shipped.get("query") or default
    symmetric = shipped.get(SYMMETRIC_TYPES[0], query)
    by_type = {kind: shipped.get(kind, shipped.get(kind.lower())) for kind in SYMMETRIC_TYPES}
    by_side = {f"{kind}-{side}": (shipped.get(f"{kind}-{side}", shipped.get(kind)), own)
               for kind in ASYMMETRIC_TYPES for side, own in ((QUERY, query), (DOCUMENT, document))}
    typed = tuple((kind, prompt) for kind, prompt in by_type.items() if prompt is not None and prompt != symmetric)
    typed += tuple((key, prompt) for key, (prompt, own) in by_side.items() if prompt is not None and prompt != own)
    return query, document, symmetric, typed


def pools_prompt(model) -> bool:
    """Whether the model's pooling averages the prompt's tokens with the text's (INSTRUCTOR-style models, with
    ``include_prompt=false``, leave them out)."""
    return all(getattr(module, "include_prompt", True) is not False for module in model)


def _transformer_config(model):
    network = getattr(model[0], "auto_model", None)
    return None if network is None else network.config


def resolve_prompts(model, prompts, template: str | None) -> Prompts:
    """``model.prompts`` (a side left null takes the model's own) and ``model.prompt_template`` (null: the one
    the model was trained with, if any), pooled with the text or left out of the pooling as the model's pooling
    module says."""
    query, document, symmetric, typed = shipped_prompts(model)
    if template is None:
        template = getattr(_transformer_config(model), SAVED_TEMPLATE, None)
    if prompts.query is not None:
        query, symmetric = prompts.query, prompts.query if symmetric == query else symmetric
    # a side set in the config is that side's in every task, the model's typed prompts for it included
    given = {side for side in (QUERY, DOCUMENT) if getattr(prompts, side) is not None}
    if prompts.symmetric is not None:
        given.add(SYMMETRIC)
        symmetric = prompts.symmetric
    typed = tuple((kind, prompt) for kind, prompt in typed if base_side(kind) not in given)
    return Prompts(query, document if prompts.document is None else prompts.document, symmetric, template,
                   pools_prompt(model), typed)


def keep_prompts(model, prompts: Prompts) -> None:
    """``model`` made to carry the prompts it was trained with, to be saved: its prompts joined by these, under the
    names :func:`shipped_prompts` reads, and the template in its transformers config."""
    saved = {**model.prompts, "query": prompts.query, "document": prompts.document, **dict(prompts.typed)}
    if prompts.symmetric != prompts.query:
        saved.update({kind: prompts.symmetric for kind in SYMMETRIC_TYPES if kind not in dict(prompts.typed)})
    for kind in ASYMMETRIC_TYPES:  # each side as scored, where the model's own names for the type would say otherwise
        for side in (f"{kind}-{QUERY}", f"{kind}-{DOCUMENT}"):
            if kind in saved or side in saved:
                saved[side] = prompts.prefix(side)
    model.prompts = saved
    config = _transformer_config(model)
    if prompts.template and config is not None:
        setattr(config, SAVED_TEMPLATE, prompts.template)


def training_prompts(prompts: Prompts, columns: Sequence[str], instruction: str | None = None) -> dict[str, str]:
    """The trainer's prompt per text column: the query prompt (or the source's instruction, through the
    template) on anchors, the document prompt on positives, negatives and candidates, the symmetric prompt on
    both sides of scored pairs."""
    out = {}
    for column in columns:
        if column in ("label", "dataset_name", "text"):  # text: unlabeled, for masked-LM pre-training as it is
            continue
        side = QUERY if column == "anchor" else SYMMETRIC if column.startswith("sentence") else DOCUMENT
        if prompts.prefix(side, instruction):
            out[column] = prompts.prefix(side, instruction)
    return out
