"""BM25 as a retriever: Pyserini's "flat" score on SciFact, its settings, and JAX kept off the GPU."""
import os
import subprocess
import sys

import pytest

from embedbench.config import BM25Config
from embedbench.data.beir import load_beir
from embedbench.errors import EmbedbenchError
from embedbench.models import LexicalModel
from embedbench.retrieval.lexical import BM25
from embedbench.tasks.retrieval import RetrievalTask
from tests.helpers import SCIFACT, needs_data


@needs_data
def test_bm25_on_scifact_is_pyserini_flat_within_001():
    task = RetrievalTask("scifact", load_beir("scifact", SCIFACT, "test"), ["ndcg_at_10", "recall_at_100"])
    scores = task.evaluate(LexicalModel(BM25(BM25Config()), "bm25"))
    assert scores["scifact/ndcg_at_10"] == pytest.approx(0.6789, abs=0.01)  # Pyserini BEIR flat index
    assert scores["scifact/bytes_per_vec"] > 0


def test_bm25_settings_change_the_ranking_and_bad_stemmer_is_refused():
    docs = ["running shoes for marathon runners", "the run of the season", "cooking pasta at home"]
    stemmed = BM25(BM25Config()).retrieve(["runs"], docs, 3)[""].ids[0]
    unstemmed = BM25(BM25Config(stemmer=None)).retrieve(["runs"], docs, 3)[""]
    assert set(stemmed[:2]) == {0, 1} and (unstemmed.scores[0] == 0).all()  # "runs" matches only via stems
    with pytest.raises(EmbedbenchError, match="model.bm25.stemmer=klingon"):
        BM25(BM25Config(stemmer="klingon"))


def _python(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120,
                          check=True).stdout.strip()


def test_dense_jobs_never_import_bm25s():
    # bm25s brings JAX, which on a GPU machine takes most of the GPU's memory: dense runs must not import it
    assert _python("import sys, embedbench.cli, embedbench.jobs.eval, embedbench.jobs.train, embedbench.models;"
                   "print('bm25s' in sys.modules)") == "False"


@pytest.mark.parametrize("preset, expected", [(None, "cpu"), ("cuda", "cuda")])
def test_bm25_keeps_jax_on_the_cpu_unless_told_otherwise(preset, expected):
    env = {"JAX_PLATFORMS": preset} if preset else {}
    assert _python("import os, embedbench.retrieval.lexical; print(os.environ['JAX_PLATFORMS'])", **env) == expected
