"""Teacher scores: BM25, qrels grades, a cross-encoder and a bi-encoder, each row's candidates in order,
scaled, stored once."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from embedbench.config import BM25Config, EncodeConfig, TeacherConfig
from embedbench.data.beir import load_beir
from embedbench.data.teacher import teacher_scores
from embedbench.retrieval.lexical import BM25

ENCODE = EncodeConfig(precision="fp32", batch_size=32)


@pytest.fixture(scope="module")
def train_split(scifact_slice):
    ds = load_beir("scifact", scifact_slice, "train")
    pairs = [(q, d) for q, docs in ds.qrels.items() for d in docs][:12]
    return ds, pairs


def test_teacher_scores_bm25_and_grades_are_stored_once(tmp_path, train_split):
    ds, pairs = train_split
    rows = [{"query": q, "positive": d, "negatives": [n for n in ds.corpus if n not in ds.qrels[q]][:2]}
            for q, d in pairs[:4]]
    bm25 = TeacherConfig(kind="bm25", scale=0.5)
    scores = teacher_scores(ds, rows, bm25, ENCODE, None, str(tmp_path))
    doc_ids = list(ds.corpus)
    candidates = [[doc_ids.index(d) for d in [r["positive"], *r["negatives"]]] for r in rows]
    direct = BM25(BM25Config()).pair_scores([ds.doc_text(d) for d in doc_ids], [ds.queries[r["query"]] for r in rows],
                                            candidates)
    assert np.allclose(scores, 0.5 * np.array(direct))
    assert len(list(tmp_path.glob("*.json"))) == 1
    assert teacher_scores(ds, rows, bm25, ENCODE, None, str(tmp_path)) == scores  # read back
    grades = teacher_scores(ds, rows, TeacherConfig(kind="grades"), ENCODE, None, str(tmp_path))
    assert grades == [[ds.qrels[r["query"]][r["positive"]], 0, 0] for r in rows]


def test_model_teachers_score_each_row_in_candidate_order(tmp_path, train_split, encoder):
    """The cross-encoder teacher (a tiny random one) and the bi-encoder teacher (MiniLM's cosine) give each
    row's [positive, negatives] in order, scaled, whatever the rows' shared texts."""
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from embedbench.embedding.sources import resolve_model_path

    ds, pairs = train_split
    others = [d for d in ds.corpus if all(d not in ds.qrels[q] for q, _ in pairs)]
    rows = [{"query": q, "positive": d, "negatives": [others[i], others[i + 1]]} for i, (q, d) in enumerate(pairs[:4])]
    texts = [[(ds.queries[r["query"]], ds.doc_text(d)) for d in [r["positive"], *r["negatives"]]] for r in rows]

    folder = tmp_path / "cross_encoder"
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=1, initializer_range=0.5)
    BertForSequenceClassification(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(resolve_model_path("default")[0]).save_pretrained(folder)
    cross = TeacherConfig(kind="cross_encoder", model=str(folder), scale=2.0)
    scores = teacher_scores(ds, rows, cross, ENCODE, None, str(tmp_path / "store"), device="cpu")
    direct = CrossEncoder(str(folder), device="cpu").predict([pair for row in texts for pair in row])
    assert np.allclose(scores, 2.0 * direct.reshape(4, 3), atol=1e-5)
    assert np.diff(np.sort(direct)).min() > 1e-4  # the pairs' scores differ: a misordering would show

    bi = TeacherConfig(kind="embedder", model="default")
    scores = teacher_scores(ds, rows, bi, ENCODE, None, str(tmp_path / "store"), device="cpu")
    query = F.normalize(encoder.encode([t[0][0] for t in texts], [6])[6], dim=-1)
    docs = F.normalize(encoder.encode([pair[1] for row in texts for pair in row], [6])[6], dim=-1).view(4, 3, -1)
    assert np.allclose(scores, torch.einsum("qh,qch->qc", query, docs).numpy(), atol=1e-5)
    assert len(list((tmp_path / "store").glob("*.json"))) == 2  # each teacher's scores stored
