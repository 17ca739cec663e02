"""The bad-input suite: each case through the real CLI gives one error line naming the place,
a non-zero exit, no results.json, and a FAILED MLflow run wherever a run had started.

Cases that stop before any work run the CLI's ``main`` in this process; those that stop mid-training
run it as a child process, as a user would."""
import shutil

import pytest
from mlflow.tracking import MlflowClient

from conftest import run_cli, run_cli_in_process

pytestmark = pytest.mark.slow

FAST_EVAL = ["eval=beir", "eval.max_queries=5", "eval.max_docs=50"]


def _break_corpus_line(folder):
    lines = (folder / "corpus.jsonl").read_text().splitlines(keepends=True)
    lines[4] = lines[4][: len(lines[4]) // 2] + "\n"
    (folder / "corpus.jsonl").write_text("".join(lines))


def _unknown_doc_in_qrels(folder):
    with open(folder / "qrels" / "test.tsv", "a") as fh:
        fh.write("1\tno-such-doc\t1\n")


def _empty_corpus(folder):
    (folder / "corpus.jsonl").write_text("")


def _empty_split(folder):
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")


def _pickled_model(folder):
    """The default model with its weights as a pickled pytorch_model.bin instead of safetensors."""
    import torch
    from safetensors.torch import load_file

    from embedbench.encoder import load_model

    load_model("default", "cpu").save(str(folder))
    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()


def _broken_model(folder):
    folder.mkdir()
    (folder / "config.json").write_text("{not json")


DATA_CASES = {  # case: (how the SciFact slice is broken, the error it must give)
    "broken JSON line": (_break_corpus_line, "corpus.jsonl:5: not valid JSON"),
    "qrels names an unknown doc": (_unknown_doc_in_qrels, "test.tsv:"),
    "empty corpus": (_empty_corpus, "corpus.jsonl: corpus is empty"),
    "empty split": (_empty_split, "test.tsv: no judgements in this split"),
}
ARG_CASES = {  # case: (command and overrides, the error it must give)
    "missing file": (["eval", "eval=sts", "eval.tasks.stsb.path=/no/such/sts.csv"], "/no/such/sts.csv: file not found"),
    "unknown config choice": (["eval", "model=nope"], "Could not find 'model/nope'; Available options in 'model': 2dmse"),
    "unknown config key": (["train", "trainer.nope=1"], "Could not override 'trainer.nope'"),
    "mistyped override value": (["train", "trainer.epochs=one"], "trainer.epochs=one: expected a number"),
    "mistyped batch size": (["eval", "encode.batch_size=big"], "encode.batch_size=big: expected an integer or auto"),
    "unknown encode backend": (["eval", *FAST_EVAL, "encode.backend=onnx"],
                               "encode.backend=onnx: expected one of auto, torch, openvino"),
    "dim beyond the hidden size": (["eval", *FAST_EVAL, "model=mrl", "model.views.dims=[512,64]"],
                                   "model.views: dim 512 is outside 1..384"),
    "layer beyond the depth": (["eval", *FAST_EVAL, "model.views.layers=[9]"],
                               "model.views: layer 9 is outside the encoder's 1..6 layers"),
    "model path that does not exist": (["eval", *FAST_EVAL, "model.name_or_path=./no/such/model"],
                                       "model.name_or_path=./no/such/model: no such folder"),
}


def _check_failure(proc, cwd, expected: str) -> None:
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("embedbench: error:")]
    assert len(errors) == 1 and expected in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not list((cwd / "outputs").rglob("results.json"))
    if (cwd / "outputs" / "mlflow.db").exists():
        client = MlflowClient(f"sqlite:///{cwd}/outputs/mlflow.db")
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert runs and all(run.info.status == "FAILED" for run in runs)


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data(case, tmp_path, scifact_slice):
    folder = shutil.copytree(scifact_slice, tmp_path / "data")
    breaker, expected = DATA_CASES[case]
    breaker(folder)
    proc = run_cli_in_process("train", "trainer=debug", f"data.root={folder}", cwd=tmp_path)
    _check_failure(proc, tmp_path, expected)


@pytest.mark.parametrize("case", ARG_CASES)
def test_bad_arguments(case, tmp_path):
    args, expected = ARG_CASES[case]
    _check_failure(run_cli_in_process(*args, cwd=tmp_path), tmp_path, expected)


@pytest.mark.parametrize("maker, expected", [(_pickled_model, "cannot load"), (_broken_model, "is not a valid JSON")])
def test_unreadable_or_pickled_model_is_refused(maker, expected, tmp_path):
    maker(tmp_path / "model")
    proc = run_cli_in_process("eval", *FAST_EVAL, f"model.name_or_path={tmp_path / 'model'}", cwd=tmp_path)
    _check_failure(proc, tmp_path, expected)


def test_nonfinite_loss_stops_the_run_naming_the_batch(tmp_path, scifact_slice):
    proc = run_cli("train", "trainer=debug", f"data.root={scifact_slice}", "loss.temperature=1e-45",
                   cwd=tmp_path, check=False)
    _check_failure(proc, tmp_path, "training batch 1: loss is nan")


def test_nonfinite_loss_can_skip_the_batch(tmp_path, scifact_slice):
    run_cli("train", "trainer=debug", f"data.root={scifact_slice}", "loss.temperature=1e-45",
            "trainer.on_nonfinite=skip", cwd=tmp_path)
    assert len(list((tmp_path / "outputs" / "runs").rglob("results.json"))) == 1
