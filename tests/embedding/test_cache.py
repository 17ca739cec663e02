"""The embedding cache: hits, misses, invalidation by weights/texts/precision, atomic entries, size bound."""
import pytest
import torch

from embedbench.embedding.cache import DIGEST_BYTES, EmbeddingCache, model_fingerprint, texts_fingerprint

TEXTS = ["a first sentence", "a second, longer sentence about caching"]


def test_miss_then_hit_returns_the_stored_layers(tmp_path):
    cache = EmbeddingCache(tmp_path, 1 << 30)
    pooled = {3: torch.randn(2, 8), 6: torch.randn(2, 8)}
    assert cache.get("m", TEXTS, [3, 6]) is None
    cache.put("m", TEXTS, pooled)
    hit = cache.get("m", TEXTS, [3, 6])
    assert hit is not None and all(torch.equal(hit[k], pooled[k]) for k in pooled)
    assert (cache.hits, cache.misses) == (1, 1)
    assert cache.get("m", TEXTS, [1, 6]) is None  # a layer never encoded: miss
    assert cache.get("other-model", TEXTS, [6]) is None
    assert cache.get("m", TEXTS[:1], [6]) is None


def test_no_temporary_files_left_and_size_bound_holds(tmp_path):
    entry = 2 * 8 * 4 + 128  # two rows of 8 float32 plus the .npy header
    cache = EmbeddingCache(tmp_path, 3 * entry)
    for i in range(6):
        cache.put(f"m{i}", TEXTS, {6: torch.randn(2, 8)})
    files = list(tmp_path.rglob("*"))
    assert not [f for f in files if f.name.endswith(".tmp")]
    assert sum(f.stat().st_size for f in files if f.is_file()) <= 3 * entry
    assert cache.get("m5", TEXTS, [6]) is not None  # the newest survive
    assert cache.get("m0", TEXTS, [6]) is None


def test_fingerprints_change_with_weights_precision_and_texts(encoder):
    before = model_fingerprint(encoder, "fp32")
    assert before == model_fingerprint(encoder, "fp32")
    assert before != model_fingerprint(encoder, "bf16")
    weight = encoder.model[0].model.embeddings.word_embeddings.weight
    with torch.no_grad():
        weight[0, 0] += 1.0
        try:
            assert model_fingerprint(encoder, "fp32") != before
        finally:
            weight[0, 0] -= 1.0
    assert texts_fingerprint(["ab", "c"]) != texts_fingerprint(["a", "bc"])


def test_fingerprints_tell_a_causal_load_of_a_decoder_from_a_bidirectional_one(tiny_decoder):
    from embedbench.embedding.encoder import load_encoder

    causal, bidirectional = (load_encoder(str(tiny_decoder), "cpu", bidirectional=b) for b in (False, True))
    assert model_fingerprint(causal, "fp32") != model_fingerprint(bidirectional, "fp32")  # the same weights


def test_fingerprints_change_with_the_transformers_code(tiny_model_path, tmp_path, monkeypatch):
    import importlib

    from embedbench.embedding.encoder import load_encoder

    encoder = load_encoder(str(tiny_model_path), "cpu")
    before = model_fingerprint(encoder, "fp32")
    code = tmp_path / "edited_bert.py"
    code.write_text("from transformers import BertModel\n\n\nclass EditedBert(BertModel):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    encoder.model[0].auto_model.__class__ = importlib.import_module("edited_bert").EditedBert  # the same weights
    edited = model_fingerprint(encoder, "fp32")
    code.write_text(code.read_text() + "# an edit\n")
    assert before != edited != model_fingerprint(encoder, "fp32")


@pytest.mark.parametrize("damage", ["truncated", "bytes flipped", "wrong shape"])
def test_a_damaged_entry_is_reported_and_encoded_again_never_returned(tmp_path, caplog, damage):
    cache = EmbeddingCache(tmp_path, 1 << 30)
    cache.put("m", TEXTS, {6: torch.randn(2, 8)})
    [path] = tmp_path.rglob("*.npy")
    data = path.read_bytes()
    if damage == "truncated":  # a crash mid-write, by a writer that did not publish by rename
        path.write_bytes(data[: len(data) // 2])
    elif damage == "bytes flipped":  # the array's numbers altered, the file's length kept
        path.write_bytes(data[:-40] + bytes(b ^ 0xFF for b in data[-40:-32]) + data[-32:])
    else:  # a whole, self-consistent entry of another shape under this key
        other = EmbeddingCache(tmp_path / "other", 1 << 30)
        other.put("m", TEXTS[:1], {6: torch.randn(1, 8)})
        path.write_bytes(next((tmp_path / "other").rglob("*.npy")).read_bytes())
    assert cache.get("m", TEXTS, [6]) is None
    assert f"embedding cache: {path} is damaged" in caplog.text
    fresh = {6: torch.randn(2, 8)}
    cache.put("m", TEXTS, fresh)  # the run encodes again and replaces the entry
    assert torch.equal(cache.get("m", TEXTS, [6])[6], fresh[6])


def kept_bytes(cache, key):
    """The bytes a blob was kept from, None where the cache gives no file for it."""
    path = cache.blob_file(key)
    return None if path is None else path.read_bytes()[:-DIGEST_BYTES]


def test_kept_blobs_share_the_size_bound_and_one_over_half_of_it_is_not_kept(tmp_path):
    cache = EmbeddingCache(tmp_path, 1000)
    cache.put_blob("big", [bytes(501)])
    assert cache.blob_file("big") is None and not list(tmp_path.rglob("*.ov"))
    cache.put_blob("converted", [bytes(400)])
    assert kept_bytes(cache, "converted") == bytes(400)
    for i in range(3):  # embeddings written later push the least recently used blob out
        cache.put(f"m{i}", TEXTS, {6: torch.randn(2, 8)})
    assert sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file()) <= 1000
    for i in range(6):
        cache.put(f"n{i}", TEXTS, {6: torch.randn(2, 8)})
    assert cache.blob_file("converted") is None


def test_a_blob_is_kept_from_bytes_and_files_in_order_and_a_file_counts_towards_the_bound(tmp_path, monkeypatch):
    from embedbench.embedding import cache as cache_module

    weights = tmp_path / "model.bin"
    weights.write_bytes(bytes(range(256)) * 3)
    cache = EmbeddingCache(tmp_path / "cache", 2000)
    cache.put_blob("converted", [b"head", weights, b"tail"])
    assert kept_bytes(cache, "converted") == b"head" + weights.read_bytes() + b"tail"
    monkeypatch.setattr(cache_module, "COPY_CHUNK", 100)  # the file copied and checked in many chunks, as in one
    cache.put_blob("chunked", [b"head", weights, b"tail"])
    assert kept_bytes(cache, "chunked") == kept_bytes(cache, "converted")
    path = cache.blob_file("chunked")
    path.write_bytes(path.read_bytes()[:-1])  # cut short by one byte
    assert cache.blob_file("chunked") is None
    cache.put_blob("big", [b"head", weights, weights])  # 1540 bytes, over half of 2000
    assert cache.blob_file("big") is None


def test_a_long_list_is_kept_piece_by_piece_so_a_stopped_encoding_resumes_where_it_stopped(tiny_model, tmp_path,
                                                                                         monkeypatch):
    from embedbench.config import EncodeConfig
    from embedbench.embedding import embedder
    from embedbench.embedding.encoder import LayerEncoder

    monkeypatch.setattr(embedder, "CACHED_PIECE", 4)
    encoder = LayerEncoder(tiny_model)
    texts = [f"text number {i} " * (1 + i % 5) for i in range(10)]  # pieces of 4, 4 and 2

    def embed():
        return embedder.Embedder(encoder, [1, 2], EncodeConfig(), EmbeddingCache(tmp_path, 1 << 30))

    stopped = embed()
    stopped(texts[:8], "texts")  # as far as an eval stopped after its second piece got
    resumed = embed()
    pooled = resumed(texts, "texts")
    assert (resumed.cache.hits, resumed.cache.misses) == (2, 1)  # only the last piece encoded
    whole = embedder.Embedder(encoder, [1, 2], EncodeConfig())(texts, "texts")  # no cache: one list, no pieces
    for layer in (1, 2):
        assert pooled[layer].shape == (10, 32)
        torch.testing.assert_close(pooled[layer], whole[layer], atol=1e-5, rtol=1e-4)
