"""The CLI on bad input: each case gives one error line naming the place, a non-zero exit, no results.json,
and a FAILED MLflow run wherever a run had started; config errors stop before any run folder, MLflow run or
sweep exists, without importing torch.

The cases run the CLI's ``main`` in this process: the same code path as a child process, without paying
the imports again."""
import shutil
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import DATA, run_main

pytestmark = pytest.mark.slow

FAST_EVAL = ["eval=beir", "eval.max_queries=5", "eval.max_docs=50"]


def _break_corpus_line(folder):
    lines = (folder / "corpus.jsonl").read_text().splitlines(keepends=True)
    lines[4] = lines[4][: len(lines[4]) // 2] + "\n"
    (folder / "corpus.jsonl").write_text("".join(lines))


def _qrels_of_another_corpus(folder):
    path = folder / "qrels" / "test.tsv"
    asked = path.read_text().splitlines()[1].split("\t")[0]
    path.write_text(f"query-id\tcorpus-id\tscore\n{asked}\tno-such-doc\t1\n")


def _empty_corpus(folder):
    (folder / "corpus.jsonl").write_text("")


def _empty_split(folder):
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")


def _pickled_model(folder):
    """The default model with its weights as a pickled pytorch_model.bin instead of safetensors."""
    import torch
    from safetensors.torch import load_file

    from embedbench.embedding.encoder import load_model

    load_model("default", "cpu").save(str(folder))
    weights = folder / "model.safetensors"
    torch.save(load_file(weights), folder / "pytorch_model.bin")
    weights.unlink()


def _broken_model(folder):
    folder.mkdir()
    (folder / "config.json").write_text("{not json")


DATA_CASES = {  # case: (how the SciFact slice is broken, the error it must give)
    "broken JSON line": (_break_corpus_line, "corpus.jsonl:5: not valid JSON"),
    "qrels of another corpus": (_qrels_of_another_corpus, "test.tsv:2: document 'no-such-doc' is not in the corpus"),
    "empty corpus": (_empty_corpus, "corpus.jsonl: corpus is empty"),
    "empty split": (_empty_split, "test.tsv: no judgements in this split"),
}
BEFORE_LAUNCH = {  # case: (command and overrides, the error it must give before anything starts)
    "unknown config choice": (["eval", "model=nope"], "model=nope: no such option; choose one of 2dmse"),
    "unknown config key": (["train", "trainer.nope=1"],
                           "trainer.nope: unknown key (trainer takes attention_dropout, batch_size"),
    "misspelt key added with +": (["train", "+trainer.epoch=2"], "did you mean trainer.epochs?"),
    "unknown key in a task": (["eval", "eval=beir", "+eval.tasks.beir.rooot=/tmp"],
                              "eval.tasks.beir.rooot: unknown key"),
    "mistyped override value": (["train", "trainer.epochs=one"], "trainer.epochs=one: expected a number"),
    "mistyped batch size": (["eval", "encode.batch_size=big"], "encode.batch_size=big: expected a positive integer"),
    "unknown encode backend": (["eval", "encode.backend=onnx"], "encode.backend=onnx: choose one of auto, torch"),
    "model path that does not exist": (["eval", *FAST_EVAL, "model.name_or_path=./no/such/model"],
                                       "model.name_or_path=./no/such/model: no such folder"),
    "a sweep with an unknown choice": (["train", "-m", "trainer=debug", "model=mrl,mrll"],
                                       "model=mrll: no such option"),
    "a sweep with a misspelt key": (["train", "-m", "trainer=debug", "trainer.epoch=2,3"],
                                    "trainer.epoch: unknown key"),
    "a config folder that does not exist": (["eval", "--config-dir", "/no/such/dir"],
                                            "--config-dir /no/such/dir: no such folder"),
}
IN_RUN = {  # case: (command and overrides, the error it must give once the run has started)
    "missing file": (["eval", "eval=sts", "eval.tasks.stsb.path=/no/such/sts.csv"],
                     "/no/such/sts.csv: file not found"),
    "dim beyond the hidden size": (["eval", *FAST_EVAL, "model=mrl", "model.views.dims=[512,64]"],
                                   "model.views: dim 512 is outside 1..384"),
    "layer beyond the depth": (["eval", *FAST_EVAL, "model.views.layers=[9]"],
                               "model.views: layer 9 is outside the encoder's 1..6 layers"),
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
        assert all(expected in run.data.tags["embedbench.error"] for run in runs)  # the UI shows why


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_data(case, tmp_path, scifact_slice):
    folder = shutil.copytree(scifact_slice, tmp_path / "data")
    breaker, expected = DATA_CASES[case]
    breaker(folder)
    proc = run_main("train", "trainer=debug", f"data.root={folder}", cwd=tmp_path, check=False)
    _check_failure(proc, tmp_path, expected)


@pytest.mark.parametrize("case", BEFORE_LAUNCH)
def test_config_errors_stop_before_anything_starts(case, tmp_path):
    args, expected = BEFORE_LAUNCH[case]
    _check_failure(run_main(*args, cwd=tmp_path, check=False), tmp_path, expected)
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()


@pytest.mark.parametrize("case", IN_RUN)
def test_bad_arguments_found_in_the_run_fail_it(case, tmp_path):
    args, expected = IN_RUN[case]
    _check_failure(run_main(*args, cwd=tmp_path, check=False), tmp_path, expected)


@pytest.mark.parametrize("maker, expected", [(_pickled_model, "cannot load"), (_broken_model, "is not a valid JSON")])
def test_unreadable_or_pickled_model_is_refused(maker, expected, tmp_path):
    maker(tmp_path / "model")
    proc = run_main("eval", *FAST_EVAL, f"model.name_or_path={tmp_path / 'model'}", cwd=tmp_path, check=False)
    _check_failure(proc, tmp_path, expected)


def test_nonfinite_loss_stops_the_run_naming_the_batch(tmp_path, scifact_slice, tiny_model_path):
    proc = run_main("train", "trainer=debug", f"model.name_or_path={tiny_model_path}", f"data.root={scifact_slice}",
                    "loss.temperature=1e-45", cwd=tmp_path, check=False)
    _check_failure(proc, tmp_path, "training batch 1: loss is nan")


def test_nonfinite_loss_can_skip_the_batch(tmp_path, scifact_slice, tiny_model_path):
    run_main("train", "trainer=debug", f"model.name_or_path={tiny_model_path}", f"data.root={scifact_slice}",
             "loss.temperature=1e-45", "trainer.on_nonfinite=skip", "eval=sts", cwd=tmp_path)
    assert len(list((tmp_path / "outputs" / "runs").rglob("results.json"))) == 1


@pytest.mark.parametrize("args", [["--help"], ["train", "trainer.epochs=one"],
                                  ["eval", "eval=beir", "+eval.tasks.beir.rooot=/tmp"], ["compare"]])
def test_help_config_errors_and_compare_never_import_torch(args, tmp_path):
    probe = ("import sys; from embedbench import cli; sys.argv = ['embedbench', *sys.argv[1:]]\n"
             "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
             "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", probe, *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.strip().splitlines()[-1] == "False", proc.stdout + proc.stderr
    assert ("usage: embedbench" in proc.stdout) == (args == ["--help"])


def test_compare_and_ui_answer_help(tmp_path):
    for command in ("compare", "ui"):
        proc = run_main(command, "--help", cwd=tmp_path, check=False)
        assert proc.returncode == 0 and f"usage: embedbench {command}" in proc.stdout
    assert not (tmp_path / "outputs").exists()


def test_a_users_config_folder_adds_tasks_and_its_keys_are_checked(tmp_path):
    folder = tmp_path / "my_conf" / "eval"
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text("defaults:\n  - /schema/task/sts@tasks.mine\n\ntasks:\n  mine:\n"
                                      f"    path: {DATA / 'sts/stsbenchmark/sts-test.csv'}\n"
                                      "    max_scor: 5\n")
    proc = run_main("eval", "eval=mine", "--config-dir", str(tmp_path / "my_conf"), cwd=tmp_path, check=False)
    _check_failure(proc, tmp_path, "eval.tasks.mine.max_scor: unknown key")
    assert "did you mean eval.tasks.mine.max_score?" in proc.stderr


def test_a_sweep_jobs_name_leads_with_what_the_sweep_varies():
    from embedbench.cli import name_run

    overrides = ["trainer=debug", "model=mrl", "loss.temperature=0.02", "+eval.baseline=true"]
    assert name_run("train", overrides, ["loss.temperature"]) == \
        "loss.temperature=0.02 | train trainer=debug model=mrl +eval.baseline=true"
    assert name_run("eval", ["model=mrl"], []) == "eval model=mrl"


def test_a_later_stage_finds_the_model_of_the_job_before_it_or_says_why_not(tmp_path):
    from types import SimpleNamespace

    from hydra.types import RunMode

    from embedbench.cli import previous_job_model
    from embedbench.errors import EmbedbenchError

    second = SimpleNamespace(mode=RunMode.MULTIRUN, job=SimpleNamespace(num=1),
                             runtime=SimpleNamespace(output_dir=str(tmp_path / "1")))
    with pytest.raises(EmbedbenchError, match="holds no model; the job before did not finish"):
        previous_job_model(second)
    (tmp_path / "0" / "model").mkdir(parents=True)
    (tmp_path / "0" / "model" / "modules.json").write_text("[]")
    assert previous_job_model(second) == str((tmp_path / "0" / "model").resolve())
    first = SimpleNamespace(mode=RunMode.MULTIRUN, job=SimpleNamespace(num=0), runtime=second.runtime)
    with pytest.raises(EmbedbenchError, match="has none before it"):
        previous_job_model(first)
