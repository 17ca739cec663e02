"""Config schemas: every setting's type, closed choices and default, in one place.

The dataclasses below are registered in Hydra's ConfigStore and merged under the YAMLs of ``conf/``,
so a mistyped number, an unknown choice or an unknown key fails at composition; checks that span
several settings live in ``__post_init__``. :mod:`embedbench.composition` turns a composed config into
these objects. Nothing here imports torch: a config error is reported before any slow import.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Union

from omegaconf import MISSING, OmegaConf

from embedbench.errors import EmbedbenchError


class Choice(str, Enum):
    """A closed choice that reads and compares as its string (``Precision.bf16 == "bf16"``)."""

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


class Job(Choice):
    train = "train"
    eval = "eval"


class Precision(Choice):
    auto = "auto"  # bf16 on CUDA, fp32 (the reference) elsewhere
    fp32 = "fp32"
    bf16 = "bf16"
    int8 = "int8"  # int8 weights and activations in the GEMMs, the rest bf16: OpenVINO on CPU


class Backend(Choice):
    auto = "auto"  # OpenVINO for bf16 on CPU, torch otherwise
    torch = "torch"
    openvino = "openvino"


class Similarity(Choice):
    cosine = "cosine"
    dot = "dot"  # inner product of the embeddings as they are (DPR, TAS-B, Contriever, Tevatron's default)


class ModelKind(Choice):
    encoder = "encoder"
    lexical = "lexical"


class DataFormat(Choice):
    beir = "beir"
    pairs = "pairs"  # (anchor, positive[, negatives]) rows of a table: sentence-transformers' pair and triplet sets
    scored_pairs = "scored_pairs"
    graded_lists = "graded_lists"
    groups = "groups"  # a query with its positives and negatives: FlagEmbedding's and Tevatron's training files
    mirror = "mirror"
    cropping = "cropping"
    labelled = "labelled"  # a labelled table (classification, clustering data) made into pairs, as NV-Embed does
    classes = "classes"  # a labelled table as (text, class index): for classifier losses (loss=dsimplex)
    text = "text"  # unlabeled text, one column: for masked-LM pre-training (loss=smae)


Column = Union[str, int]  # a header name, or a 0-based position


class Negatives(Choice):
    mined = "mined"


class TeacherKind(Choice):
    embedder = "embedder"
    cross_encoder = "cross_encoder"
    bm25 = "bm25"
    grades = "grades"


class Sampler(Choice):
    tas_balanced = "tas_balanced"
    same_source = "same_source"  # data.sources: every batch from one source, sources drawn by their size


Sample = Choice("Sample", [("2dmse", "2dmse")])


class OnNonfinite(Choice):
    stop = "stop"
    skip = "skip"


Bm25Method = Choice("Bm25Method", [(m, m) for m in ("robertson", "lucene", "atire", "bm25l", "bm25+")])


# ---------------------------------------------------------------------------------------------------- model
def dims_given(dims) -> bool:
    """Whether ``dims`` is a setting of dims: null, ``ladder``, or a list of numbers and ``full``."""
    return dims is None or dims == "ladder" or isinstance(dims, list) and all(
        type(dim) is int or dim == "full" for dim in dims)


@dataclass
class ViewsConfig:
    layers: Any = None  # null: the last layer; `all`: every layer; or a list of 1-based layers
    # null: full width; `ladder`: the full width, then each power of two below it down to 32 (any encoder's
    # Matryoshka dims: 384, 256, 128, 64, 32 on MiniLM; 768, 512, ..., 32 on a BERT-base); or leading-coordinate
    # cuts, `full` for the full width
    dims: Any = None
    pairs: List[List[int]] | None = None  # a fixed list of [layer, dim] (Starbucks), instead of layers x dims
    weights: List[float] | None = None  # one per declared view in the objective; null: all 1

    def __post_init__(self) -> None:
        if not (self.layers is None or self.layers == "all" or isinstance(self.layers, list)):
            raise EmbedbenchError(f"model.views.layers={self.layers}: expected null, all or a list of layers")
        if not dims_given(self.dims):
            raise EmbedbenchError(f"model.views.dims={self.dims}: expected null, ladder or a list of dims (or full)")


@dataclass
class ObjectiveConfig:
    sample: Sample | None = None  # null: every declared view at every step; 2dmse: one layer and dim per step
    sample_dims: List[int] | None = None
    align_weight: float = 0.0  # KL of each smaller view to the full one (Starbucks, 2DMSE)
    align_temperature: float = 1.0  # embedding alignment (cosent, angle): softmax temperature over coordinates


@dataclass
class BM25Config:
    """Pyserini's BEIR "flat" settings: title and text in one field, Lucene's BM25 and English stop words."""

    k1: float = 0.9
    b: float = 0.4
    method: Bm25Method = Bm25Method["lucene"]
    stemmer: str | None = "porter"  # any PyStemmer algorithm, or null
    stopwords: str | None = "en"


class LongStrategy(Choice):
    """Inputs beyond the window (embedbench/embedding/long.py)."""
    truncate = "truncate"  # the first max_seq_length tokens
    chunk = "chunk"  # windows of max_seq_length tokens, their embeddings pooled (ChunkPooling)
    interpolate = "interpolate"  # position interpolation: absolute tables and RoPE alike
    ntk = "ntk"  # NTK-aware scaling of the rotary base: RoPE models only
    group = "group"  # grouped positions: absolute-position models only
    recur = "recur"  # recurrent positions: absolute-position models only
    selfextend = "selfextend"  # SelfExtend: RoPE models only


class ChunkPooling(Choice):
    mean = "mean"
    max = "max"


class Pooling(Choice):
    """sentence-transformers' pooling modes by their usual names; last_token finds the last real token under
    left and right padding alike."""

    mean = "mean"
    cls = "cls"
    max = "max"
    last_token = "last_token"
    latent_attention = "latent_attention"  # NV-Embed's trainable head (model.latent_attention)


class PaddingSide(Choice):
    left = "left"
    right = "right"


class WeightsDtype(Choice):
    fp32 = "fp32"  # master weights for training and the fp32 reference, whatever the checkpoint holds
    bf16 = "bf16"
    fp16 = "fp16"
    auto = "auto"  # the checkpoint's own


@dataclass
class LoraConfig:
    """Low-rank adapters (peft) on the transformer: only they (and a trainable pooling head) train; the saved
    model has them merged into its weights, so it loads anywhere as a plain model."""

    r: int = 0  # the rank; 0: no adapters, every weight trains
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: List[str] | None = None  # null: peft's default for the architecture

    def __post_init__(self) -> None:
        if self.r < 0:
            raise EmbedbenchError(f"model.lora.r={self.r}: a rank is >= 0 (0: no adapters)")


@dataclass
class LatentAttentionConfig:
    """NV-Embed's pooling head (its paper: 512 latents, 8 heads); initialised at random, it trains with the model."""

    latents: int = 512
    heads: int = 8
    mlp_ratio: int = 4


@dataclass
class PromptsConfig:
    """Text put before every input of a side; null: the prompt the model ships (its
    config_sentence_transformers.json), '' none."""

    query: str | None = None
    document: str | None = None
    # every text of a symmetric task (STS, classification, clustering, pair classification); null: the query
    # prompt, as E5-style models are evaluated ('' for models whose query prompt is a retrieval instruction)
    symmetric: str | None = None


@dataclass
class ModelConfig:
    name: str = MISSING
    kind: ModelKind = ModelKind.encoder
    name_or_path: str = "default"  # the embedded all-MiniLM-L6-v2, a hub name, a folder or a run folder
    max_seq_length: int | None = None  # null: the model's own
    trust_remote_code: bool = False
    layer: int | None = None  # model=separate: the depth trained alone
    pooling: Pooling | None = None  # null: the model's own head; else it is replaced, and saved so
    # null: as the model's pooling says; false: a prompt's tokens are left out of the pooled mean (NV-Embed's
    # instructions, INSTRUCTOR); saved with a trained model
    include_prompt: bool | None = None
    bidirectional: bool = False  # decoder-only models: every token attends to every other (no causal mask)
    padding_side: PaddingSide | None = None  # null: the tokenizer's own
    # the weights as loaded: fp32 even for a bf16 checkpoint, as full fine-tuning needs fp32 master weights;
    # bf16 halves the memory of a large model that is only evaluated or trained through LoRA
    dtype: WeightsDtype = WeightsDtype.fp32
    # how retrieval and reranking score: null, the model's own (sentence-transformers' similarity_fn_name,
    # cosine where it names none); set, it is also saved with a trained model
    similarity: Similarity | None = None
    lora: LoraConfig = field(default_factory=LoraConfig)  # training only: adapters instead of full fine-tuning
    latent_attention: LatentAttentionConfig = field(default_factory=LatentAttentionConfig)  # pooling=latent_attention
    views: ViewsConfig = field(default_factory=ViewsConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    bm25: BM25Config = field(default_factory=BM25Config)  # kind=lexical
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    long: LongStrategy = LongStrategy.truncate  # inputs beyond max_seq_length: embedbench/embedding/long.py
    long_length: int = 4096  # every strategy but truncate and chunk: the positions the window is extended to
    long_pooling: ChunkPooling = ChunkPooling.mean  # chunk: how the windows' embeddings combine
    # a task's instruction and a query, for tasks that give an instruction ("Instruct: {instruction}\nQuery:
    # {text}"); the text comes last, so the prompt is a prefix as sentence-transformers applies it
    prompt_template: str | None = None

    def __post_init__(self) -> None:
        template = self.prompt_template
        if template is not None:
            fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
            if sorted(fields) != ["instruction", "text"] or not template.endswith("{text}"):
                raise EmbedbenchError(f"model.prompt_template={template!r}: needs {{instruction}} once and "
                                      "{text} once, at the end")
            if "\\n" in template:  # Hydra keeps a typed backslash-n as two characters
                raise EmbedbenchError(f"model.prompt_template={template!r}: holds a backslash and an n, not a "
                                      "line break; write the template in a model YAML, in double quotes")


# ----------------------------------------------------------------------------------------------------- data
@dataclass
class MiningConfig:
    model: str = "default"  # the miner: a model name, folder or run folder
    count: int = 1  # hard negatives per (query, positive)
    ranks: List[int] = field(default_factory=lambda: [3, 100])  # the rank band drawn from (0-based, end excluded)
    margin: float = 0.95  # only candidates scoring under margin x the positive (NV-Retriever's TopK-PercPos)
    shard_docs: int = 100_000  # the corpus is encoded and searched in shards: memory bounded by one shard
    store: str = "outputs/mined"  # mined sets and teacher scores, reused by runs with the same inputs

    def __post_init__(self) -> None:
        if len(self.ranks) != 2 or not 0 <= self.ranks[0] < self.ranks[1] or not 1 <= self.count <= (
                self.ranks[1] - self.ranks[0]):
            raise EmbedbenchError(f"data.mining: ranks {list(self.ranks)} must be [lo, hi] with 0 <= lo < hi "
                                  f"holding at least count={self.count}")


@dataclass
class TeacherConfig:
    kind: TeacherKind | None = None  # null: none
    model: str = "default"  # embedder / cross_encoder: a model name, folder or run folder
    scale: float = 1.0  # multiplies the teacher's scores (to the student's cosine scale)
    bm25: BM25Config = field(default_factory=BM25Config)  # kind=bm25


@dataclass
class TasBalancedConfig:
    clusters: int = 32  # k-means clusters of the training queries
    bins: int = 10  # teacher-margin bins each batch is balanced over


@dataclass
class CollectionConfig:
    """A retrieval collection (BEIR layout): where it is, where it comes from, and how it is scored."""
    name: str = MISSING  # metric prefix of the retrieval task scored on it
    root: str | None = None  # a BEIR folder; null: $EMBEDBENCH_DATA/beir/<name>, else `url` (cached)
    url: str | None = None
    md5: str | None = None  # the archive's published checksum; null: taken as it comes
    hub: str | None = None  # instead of a folder: a Hugging Face dataset (corpus, queries, qrels configs)
    revision: str | None = None  # the hub dataset's commit
    hub_config: str | None = None  # one config whose splits are corpus, queries and qrels (LongEmbed's layout)
    subsets: List[str] = field(default_factory=list)  # folders in root scored one by one, then averaged
    eval_split: str = "test"
    ignore_identical_ids: bool = False  # queries sit in the corpus: a document with the query's id is no hit


@dataclass
class TrainingSetConfig(CollectionConfig):
    """One training set: its format and where its examples come from."""
    format: DataFormat = DataFormat.beir
    train_split: str = "train"
    negatives: Negatives | None = None  # null: in-batch negatives only
    mining: MiningConfig = field(default_factory=MiningConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)  # needs negatives=mined
    sampler: Sampler | None = None  # null: shuffled, no duplicate texts in a batch
    tas_balanced: TasBalancedConfig = field(default_factory=TasBalancedConfig)
    # pairs / scored_pairs / graded_lists / groups / labelled / classes: the training file; or, with `hub` set
    # instead, the `train_split` of that Hugging Face dataset's config `hub_config`, its columns by name
    train: str | None = None
    # pairs: the file's anchor, positive and any negative columns, in that order; scored_pairs: its two text
    # columns and the score (null: the STS Benchmark layout). Header names, or 0-based positions
    columns: List[Column] | None = None
    # scored_pairs: the gold scores' range, mapped to labels in [0, 1] (SICK-R's relatedness runs 1-5)
    min_score: float = 0.0
    max_score: float = 5.0
    # graded_lists: candidates per list; groups: texts per query, one positive and list_size - 1 negatives
    # (FlagEmbedding's train_group_size)
    list_size: int = 8
    text_file: str | None = None  # mirror / cropping / text: one text per line; null: the BEIR corpus
    span: int = 5  # mirror: words masked
    mask_token: str = "[MASK]"
    min_ratio: float = 0.1  # cropping: each crop keeps min_ratio..max_ratio of the words
    max_ratio: float = 0.5
    text_column: str = "text"  # labelled: the table's header names
    label_column: str = "label"

    def __post_init__(self) -> None:
        if self.teacher.kind and self.negatives != Negatives.mined:
            raise EmbedbenchError("data.teacher scores a candidate list: set data.negatives=mined as well")
        if not 0 < self.min_ratio <= self.max_ratio <= 1:
            raise EmbedbenchError(f"data.min_ratio={self.min_ratio}, data.max_ratio={self.max_ratio}: "
                                  "need 0 < min <= max <= 1")


@dataclass
class SourceConfig(TrainingSetConfig):
    """One training set of several: its own instruction (the query-side prompt through model.prompt_template)
    and whether the other examples of a batch are negatives (NV-Embed turns that off for non-retrieval data,
    where another text of the batch may well be a positive)."""
    instruction: str | None = None
    in_batch_negatives: bool = True


@dataclass
class DataConfig(TrainingSetConfig):
    """The training set (or sets) and the collection retrieval tasks score on."""
    # several training sets at once (`- /data@data.sources.<key>: <data config>`); empty: this one alone.
    # With sources, they alone train; data= still names the collection retrieval tasks score on.
    sources: Dict[str, SourceConfig] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------- eval
@dataclass
class TaskConfig:
    type: str = MISSING
    name: str | None = None  # metric prefix; null: the task's key
    instruction: str | None = None  # for models with a model.prompt_template: what the task asks of a query



@dataclass
class RetrievalTaskConfig(TaskConfig):
    type: str = "retrieval"
    metrics: List[str] = field(default_factory=lambda: ["ndcg_at_10", "recall_at_100", "mrr_at_10", "map_at_100"])
    data: CollectionConfig | None = None  # a collection of its own (`- /data@tasks.<key>.data: nfcorpus`); null: data=
    root: str | None = None  # a BEIR folder of its own; null: the data's
    split: str | None = None  # null: the data's eval_split
    ignore_identical_ids: bool | None = None  # null: the data's


@dataclass
class RerankingTaskConfig(TaskConfig):
    type: str = "reranking"
    # with a BEIR folder (root, else data=): query-id <tab> corpus-id per line; relative to the folder, or absolute
    candidates: str | None = None
    # instead of a folder and candidates: reranking samples, a query with its positive and negative texts per
    # jsonl line, as mteb's v1 reranking sets (SciDocsRR...) hold them, {"query", "positive": [text, ...],
    # "negative": [...]} (FlagEmbedding's pos / neg and Tevatron's passages too);
    # with hub set, the split it names (null: test) of that Hugging Face dataset (or a folder save_to_disk wrote)
    path: str | None = None
    hub: str | None = None
    hub_config: str | None = None
    revision: str | None = None  # the Hub dataset's commit
    metrics: List[str] = field(default_factory=lambda: ["map_at_1000", "mrr_at_10"])
    root: str | None = None
    split: str | None = None


class TableFormat(Choice):
    csv = "csv"
    tsv = "tsv"  # tab-separated, no quoting
    jsonl = "jsonl"


@dataclass
class Download:
    """Where a task's file comes from when it is found nowhere locally; the file is checked against the hash."""
    url: str = MISSING
    sha256: str = MISSING


@dataclass
class TableTaskConfig(TaskConfig):
    """A task read from table files: csv / tsv / jsonl, columns by name (a header) or position (none)."""
    format: TableFormat | None = None  # null: from the extension (.csv, .tsv / .txt, .jsonl)
    header: bool | None = None  # null: a header line exactly when a column is given by name
    download: Dict[str, Download] = field(default_factory=dict)  # file key (path, train, ...) -> its source
    # a Hugging Face dataset (a Hub name, or a folder save_to_disk wrote) in place of files: each file key (path,
    # train, test) then names a split of its config hub_config, and columns go by name
    hub: str | None = None
    hub_config: str | None = None
    revision: str | None = None  # the Hub dataset's commit

    def __post_init__(self) -> None:
        files = [f for f in ("path", "train", "test", "texts", "labels") if hasattr(self, f)]
        unknown = [key for key in self.download if key not in files]
        if unknown:
            raise EmbedbenchError(f"download.{unknown[0]}: not a file of a {self.type} task ({', '.join(files)})")


@dataclass
class STSTaskConfig(TableTaskConfig):
    type: str = "sts"
    path: str = MISSING  # absolute, or relative to $EMBEDBENCH_DATA
    text1_column: Column = 5  # STS Benchmark's layout: genre, file, year, id, score, sentence1, sentence2
    text2_column: Column = 6
    score_column: Column = 4
    min_score: float = 0.0
    max_score: float = 5.0


@dataclass
class ClassificationTaskConfig(TableTaskConfig):
    type: str = "classification"
    train: str = MISSING
    test: str = MISSING
    text_column: Column = "text"
    label_column: Column = "label"
    n_experiments: int = 10  # mteb's v1 protocol
    samples_per_label: int = 8
    max_iter: int = 100
    seed: int = 42  # the task's own seed: training seeds never change the protocol


@dataclass
class ClusteringTaskConfig(TableTaskConfig):
    type: str = "clustering"
    path: str | None = None  # a labelled table; or texts + labels, line-aligned files
    texts: str | None = None
    labels: str | None = None
    text_column: Column = "text"
    label_column: Column = "label"
    sample: int | None = None  # a label-stratified sample of this many texts (mteb's fast protocol)
    rounds: int = 10
    round_size: int = 16384
    kmeans_batch_size: int = 512
    seed: int = 42

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path and not (self.texts and self.labels):
            raise EmbedbenchError("give path (a labelled table) or texts + labels (line-aligned files)")


@dataclass
class PairClassificationTaskConfig(TableTaskConfig):
    type: str = "pair_classification"
    path: str = MISSING
    text1_column: Column = "sentence1"
    text2_column: Column = "sentence2"
    label_column: Column = "label"  # 0 / 1


@dataclass
class LongSyntheticTaskConfig(TaskConfig):
    """LongEmbed's synthetic tasks, generated (embedbench/data/longembed.py): <kind>_<tokens> per kind and
    length; needle documents are cut from data.text_file, else from the corpus of data=."""
    type: str = "long_synthetic"
    kinds: List[str] = field(default_factory=lambda: ["passkey", "needle"])
    lengths: List[int] = field(default_factory=lambda: [256, 512, 1024, 2048, 4096, 8192, 16384, 32768])
    docs: int = 100  # per kind and length
    queries: int = 50  # per kind and length, each with one relevant document
    metrics: List[str] = field(default_factory=lambda: ["ndcg_at_1", "ndcg_at_10"])

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - {"passkey", "needle"}
        if unknown:
            raise EmbedbenchError(f"kinds: {sorted(unknown)[0]} is not passkey or needle")
        if any(n < 16 for n in self.lengths):
            raise EmbedbenchError(f"lengths={list(self.lengths)}: each needs at least 16 tokens")


TASK_SCHEMAS = {schema.type: schema for schema in (
    RetrievalTaskConfig, RerankingTaskConfig, STSTaskConfig, ClassificationTaskConfig, ClusteringTaskConfig,
    PairClassificationTaskConfig, LongSyntheticTaskConfig)}


@dataclass
class CompatConfig:
    """Model replacement without re-indexing: the new model's queries against a reference model's documents."""

    reference: str | None = None  # hub name, folder or run folder of the model whose index is kept


@dataclass
class EvalConfig:
    tasks: Any = None  # key -> task (typed by its `type`); or a list of mteb task names
    suite: str | None = None  # log <suite>/average: the mean of every task's main score, per view
    grid: Any = None  # also score a layer x dim grid: `full`, or {layers: [...], dims: [...]}
    cache: bool = True  # reuse embeddings of the same weights and texts (false: always encode)
    baseline: bool = False  # train: also score the starting model, and report each view's change
    cache_dir: str = "outputs/cache"
    cache_max_gb: float = 5.0  # least recently used entries are dropped beyond this
    max_queries: int | None = None  # retrieval: a random subset of queries, with all their judged documents
    max_docs: int | None = None  # retrieval: the corpus filled up to this many documents
    max_pairs: int | None = None  # sts: the first N pairs
    compat: CompatConfig = field(default_factory=CompatConfig)
    # retrieval: encode and search the corpus this many documents at a time, keeping each view's top-k, so
    # memory holds one shard's embeddings (exact search only); null: the whole corpus at once
    shard_docs: int | None = None
    # retrieval and reranking: each view's ranking (retrieval's: the top k of the largest metric cutoff) as a
    # TREC run file, runs/<task>[.<view>].trec in the run folder and the MLflow run, for trec_eval and
    # significance tests
    save_runs: bool = False

    def __post_init__(self) -> None:
        if self.shard_docs is not None and self.shard_docs < 1:
            raise EmbedbenchError(f"eval.shard_docs={self.shard_docs}: expected a number of documents >= 1, or null")
        grid = self.grid
        if not (grid is None or grid == "full" or (isinstance(grid, dict) and set(grid) <= {"layers", "dims"})):
            raise EmbedbenchError(f"eval.grid={grid}: expected full, or {{layers: [...], dims: [...]}}")
        if isinstance(grid, dict) and not dims_given(grid.get("dims")):
            raise EmbedbenchError(f"eval.grid.dims={grid['dims']}: expected null, ladder or a list of dims (or full)")


@dataclass
class IndexConfig:
    """One index beside exact search (``index=``); FAISS factory strings get {dim}, {nlist}, {m}, {nbits}."""

    factory: str = "Flat"
    params: str = ""  # FAISS ParameterSpace settings, e.g. "nprobe=16" or "efSearch=128"
    binary: bool = False  # sign bits in a binary index, Hamming distance
    rescore: int = 0  # >0: fetch rescore x k by Hamming, keep the k best by float query . bits
    rescore_float: bool = False  # rescore against the float document vectors instead
    funnel_dim: int = 0  # >0: shortlist at this prefix dim, rerank at the view's dim
    shortlist: int = 0  # funnel shortlist size
    m_dims: int = 4  # PQ: dims per sub-quantizer, {m} = dim // m_dims
    train_sample: int = 0  # >0: train IVF centroids / PQ codebooks on this many random documents
    name: str = ""  # the key in index=, filled in by load()

    def __post_init__(self) -> None:
        if self.funnel_dim and self.shortlist <= 0:
            raise EmbedbenchError(f"index.{self.name}: a funnel needs shortlist > 0")


@dataclass
class EncodeConfig:
    batch_size: Any = "auto"  # texts of full length (at most 512 tokens) per batch; other lengths fill the same
    # token budget; or auto
    precision: Precision = Precision.auto
    backend: Backend = Backend.auto
    devices: Any = "auto"  # shard encoding over devices: auto (every visible GPU on a CUDA run) or a list

    def __post_init__(self) -> None:
        if self.batch_size != "auto" and not (type(self.batch_size) is int and self.batch_size > 0):
            raise EmbedbenchError(f"encode.batch_size={self.batch_size}: expected a positive integer or auto")
        if self.devices != "auto" and not isinstance(self.devices, list):
            raise EmbedbenchError(f"encode.devices={self.devices}: expected auto or a list such as [cuda:0, cuda:1]")


@dataclass
class LoggerConfig:
    tracking_uri: str = "sqlite:///outputs/mlflow.db"
    artifact_location: str | None = "outputs/mlartifacts"  # for new experiments in a local store
    experiment: str = "embedbench"
    log_model: bool = True  # copy the trained model into the run's artifacts
    param_max_len: int = 500  # longer values are cut in params; the whole config is an artifact


# ---------------------------------------------------------------------------------------------------- train
@dataclass
class TrainerConfig:
    epochs: float = 1.0
    max_steps: int = -1  # > 0 stops early
    batch_size: int = 32
    lr: float = 2.0e-5
    warmup: float = 0.1  # < 1: a fraction of the steps; >= 1: a number of steps
    weight_decay: float = 0.01
    grad_accum: int = 1
    bf16: Any = "auto"  # auto: where bf16 is native (CUDA, CPUs with AVX512-BF16); or true / false
    log_every: int = 5
    save_every: int = 200  # a checkpoint every N steps (what trainer.resume continues from); 0: none
    keep_checkpoints: bool = False  # false: a run that succeeds deletes its checkpoints (the model stays)
    max_examples: int | None = None  # train on the first N examples only
    on_nonfinite: OnNonfinite = OnNonfinite.stop  # a NaN/inf loss: stop naming the batch, or skip the batch
    resume: str | None = None  # a killed run's folder: continue from its last checkpoint
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, more time
    # dropout on attention probabilities while training; null: the model's own. 0 lets scaled-dot-product
    # attention take its fused kernel: the probabilities are never materialised, and no mask is drawn for them
    attention_dropout: float | None = None
    # on CPU, dropout masks cut from random words and attention with dropout computed in the model's dtype
    # (embedbench/embedding/dropout.py); false: torch's own, one Bernoulli draw at a time on one core
    fast_dropout: bool = True
    # previous: start from the model the job before this one in the sweep saved (a recipe's later stage)
    init_from: str | None = None

    def __post_init__(self) -> None:
        if self.bf16 not in ("auto", True, False):
            raise EmbedbenchError(f"trainer.bf16={self.bf16}: expected auto, true or false")
        if self.attention_dropout is not None and not 0 <= self.attention_dropout < 1:
            raise EmbedbenchError(f"trainer.attention_dropout={self.attention_dropout}: expected 0 <= p < 1 or null")
        if self.init_from not in (None, "previous"):
            raise EmbedbenchError(f"trainer.init_from={self.init_from}: expected previous or null")


@dataclass
class CompatLossConfig:
    """Backward-compatible training: the new model's queries also contrasted against a frozen reference model's
    embeddings of the training documents, so its queries keep finding an index the reference built."""
    reference: str | None = None  # hub name, folder or run folder; null: no compatibility term
    weight: float = 1.0


@dataclass
class LossConfig:
    name: str = MISSING
    compat: CompatLossConfig = field(default_factory=CompatLossConfig)


def _positive(**values: float) -> None:
    for key, value in values.items():
        if value is not None and value <= 0:
            raise EmbedbenchError(f"loss.{key}={value}: must be > 0")


@dataclass
class InfoNCEConfig(LossConfig):
    temperature: float = 0.05  # = MNRL's scale 20
    symmetric: bool = False  # also score documents against queries
    gather_across_devices: bool = False  # under DDP: every rank's candidates are negatives for all queries
    mini_batch_size: int | None = None  # GradCache: embed the batch in mini-batches of this size

    def __post_init__(self) -> None:
        _positive(temperature=self.temperature, mini_batch_size=self.mini_batch_size)


@dataclass
class ScoredPairLossConfig(LossConfig):
    scale: float = 20.0

    def __post_init__(self) -> None:
        _positive(scale=self.scale)


@dataclass
class KLDistillConfig(LossConfig):
    temperature: float = 0.05  # student (cosine) scores / temperature
    teacher_temperature: float = 1.0  # teacher scores (after data.teacher.scale) / teacher_temperature

    def __post_init__(self) -> None:
        _positive(temperature=self.temperature, teacher_temperature=self.teacher_temperature)


@dataclass
class WassersteinConfig(LossConfig):
    temperature: float = 0.05
    label_temperature: float = 1.0

    def __post_init__(self) -> None:
        _positive(temperature=self.temperature, label_temperature=self.label_temperature)


@dataclass
class DSimplexConfig(LossConfig):
    temperature: float = 0.05  # cosine to each fixed class vertex / temperature

    def __post_init__(self) -> None:
        _positive(temperature=self.temperature)


@dataclass
class SMAEConfig(LossConfig):
    mlm_probability: float = 0.2  # of the encoder's input tokens, masked for every view's MLM term
    mae: bool = True  # the decoder's reconstruction from each view's embedding
    decoder_mlm_probability: float = 0.4  # of the decoder's input tokens
    decoder_layers: int = 1

    def __post_init__(self) -> None:
        for key in ("mlm_probability", "decoder_mlm_probability"):
            if not 0 < getattr(self, key) < 1:
                raise EmbedbenchError(f"loss.{key}={getattr(self, key)}: expected 0 < p < 1")
        if self.decoder_layers < 1:
            raise EmbedbenchError(f"loss.decoder_layers={self.decoder_layers}: expected at least 1")


LOSS_SCHEMAS = {"infonce": InfoNCEConfig, "scored_pair": ScoredPairLossConfig, "kl_distill": KLDistillConfig,
                "wasserstein": WassersteinConfig, "dsimplex": DSimplexConfig, "smae": SMAEConfig, "plain": LossConfig}


# ---------------------------------------------------------------------------------------------------- roots
@dataclass
class SweepConfig:
    objective: str | None = None  # the metric a sweep maximises (Optuna) and ranks by; null: the first main one


@dataclass
class RunConfig:
    job: Job = MISSING
    seed: int = 42
    device: str = "auto"  # auto (cuda when present, else cpu), cpu, cuda, cuda:N
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    index: Dict[str, IndexConfig] = field(default_factory=dict)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise EmbedbenchError(f"device={self.device}: expected auto, cpu, mps, cuda or cuda:N")


@dataclass
class TrainRunConfig(RunConfig):
    loss: Any = None  # typed by its option's schema (conf/loss/*.yaml name one of LOSS_SCHEMAS)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        formats = {source.format for source in self.data.sources.values()} or {self.data.format}
        smae, text = getattr(self.loss, "name", None) == "smae", DataFormat.text in formats
        if smae != text or text and len(formats) > 1:
            raise EmbedbenchError(f"loss={self.loss.name} with data.format={'/'.join(sorted(formats))}: loss=smae "
                                  "pre-trains on unlabeled text, data.format=text, and nothing else reads it")


def _folder_or(root: str | None, default: str) -> str:
    return Path(root).expanduser().name if root else default


def register() -> None:
    """Put the schemas where the YAMLs' defaults lists find them (idempotent)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="eval_schema", node=RunConfig)
    store.store(name="train_schema", node=TrainRunConfig)
    for name, schema in LOSS_SCHEMAS.items():
        store.store(group="schema/loss", name=name, node=schema)
    for name, schema in TASK_SCHEMAS.items():  # eval YAMLs: `- /schema/task/sts@tasks.stsb`
        store.store(group="schema/task", name=name, node=schema)
    # `name: ${folder_or:${.root},scifact}`: a run pointed at another folder is named after it
    OmegaConf.register_new_resolver("folder_or", _folder_or, replace=True)


register()
