"""Encoding sharded over worker processes, one per device: here two CPU workers stand in for two GPUs."""
import pytest
import torch

from embedbench.config import EncodeConfig
from embedbench.embedding import pool as pool_module
from embedbench.embedding.embedder import Embedder
from embedbench.embedding.encoder import LayerEncoder, load_encoder
from embedbench.embedding.pool import EncoderPool, resolve_devices
from embedbench.embedding.sources import resolve_model_path
from embedbench.errors import EmbedbenchError

TEXTS = [f"sentence number {i} " + "with more words " * (i % 7) for i in range(23)] + ["word " * 300, "x"]


def test_two_workers_give_the_one_process_embeddings_in_input_order(encoder, monkeypatch):
    monkeypatch.setattr(pool_module, "CHUNK_TEXTS", 4)  # several chunks per worker, answered out of order
    embed = Embedder(encoder, [3, 6], EncodeConfig(precision="fp32", backend="torch", batch_size=4,
                                                   devices=["cpu", "cpu"]))
    single = encoder.encode(TEXTS, [3, 6], batch_size=4)
    for texts in (TEXTS, TEXTS[::-1]):  # the same pool serves a second set
        sharded = embed(texts, "test")
        expected = single if texts is TEXTS else {k: v.flip(0) for k, v in single.items()}
        for layer in (3, 6):
            assert torch.allclose(sharded[layer], expected[layer], atol=1e-5), layer


def test_workers_load_the_folder_the_weights_came_from_with_the_parents_max_length(minilm):
    encoder = load_encoder("default", "cpu", max_seq_length=8)  # a setting the folder does not hold
    pool = EncoderPool(encoder, ["cpu", "cpu"], "fp32", "torch", 4)
    assert pool.folder is None  # nothing saved: the workers read the embedded model's own folder
    sharded = pool.encode(TEXTS, [6])[6]
    assert torch.allclose(sharded, encoder.encode(TEXTS, [6], batch_size=4)[6], atol=1e-5)
    assert not torch.allclose(sharded, LayerEncoder(minilm).encode(TEXTS, [6], batch_size=4)[6], atol=1e-3)


def test_the_weights_folder_is_forgotten_once_a_step_changes_the_weights(tmp_path):
    encoder = load_encoder("default", "cpu")
    assert encoder.weights_folder == resolve_model_path("default")[0]
    parameters = list(encoder.model.parameters())
    torch.optim.AdamW(parameters).step()  # no gradients yet: nothing moves
    assert encoder.weights_folder is not None
    encoder.pooled(encoder.model.preprocess(["a step"]), [6])[6].sum().backward()
    torch.optim.AdamW(parameters, lr=1e-3).step()
    assert encoder.weights_folder is None  # a pool must now save the weights as they are
    encoder.saved_to(str(tmp_path))
    assert encoder.weights_folder == str(tmp_path)


def test_a_failing_worker_is_reported_not_waited_for_and_stops_the_pool(encoder):
    pool = EncoderPool(encoder, ["cpu", "cpu"], "fp32", "torch", 4)
    with pytest.raises(EmbedbenchError, match="failed in a worker: IndexError"):
        pool.encode(TEXTS, [99])  # no such layer
    # the failed call's other chunks must not be read as a later call's rows
    with pytest.raises(EmbedbenchError, match="the pool stopped after an earlier error"):
        pool.encode(TEXTS, [6])
    assert not any(worker.is_alive() for worker in pool.workers)


def test_device_lists():
    assert resolve_devices("auto", "cpu") == ["cpu"]
    assert resolve_devices(["cpu", "cpu"], "cpu") == ["cpu", "cpu"]
    with pytest.raises(EmbedbenchError, match="encode.devices: tpu:0 is not a device"):
        resolve_devices(["tpu:0"], "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(EmbedbenchError, match="cuda:1 asked for, but CUDA is not available"):
            resolve_devices(["cuda:1"], "cpu")
