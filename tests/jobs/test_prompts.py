"""Prompts through the jobs: a prompt scores exactly as the same text written into the file, a model's own
prompts apply unless the config says otherwise and are logged, and training prompts its columns and saves
the prompts with the model."""
import json

import pytest

from embedbench.data.tables import read_sts_benchmark
from tests.helpers import DATA, mlflow_runs, needs_data, run_main

SLICE = 120  # STS-B test pairs


@pytest.fixture
def sts_files(tmp_path):
    """An STS-B slice, and a copy whose sentences all start with "query: "."""
    lines = (DATA / "sts" / "stsbenchmark" / "sts-test.csv").read_text(encoding="utf-8").splitlines()[:SLICE]
    plain, prefixed = tmp_path / "sts.csv", tmp_path / "sts-prefixed.csv"
    plain.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = [line.split("\t") for line in lines]
    prefixed.write_text("\n".join("\t".join(r[:5] + [f"query: {r[5]}", f"query: {r[6]}"] + r[7:]) for r in rows)
                        + "\n", encoding="utf-8")
    assert read_sts_benchmark(prefixed).sentences1[0] == "query: " + read_sts_benchmark(plain).sentences1[0]
    return plain, prefixed


def run_of(tmp_path, folder):
    """The MLflow run a run folder logged to."""
    run_id = json.loads((folder / "results.json").read_text())["mlflow_run_id"]
    return next(run for run in mlflow_runs(tmp_path) if run.info.run_id == run_id)


def spearman(tmp_path, name: str, *overrides: str) -> float:
    run_main("eval", "eval=sts", "eval.cache=false", f"hydra.run.dir={tmp_path / name}", *overrides, cwd=tmp_path)
    return json.loads((tmp_path / name / "results.json").read_text())["metrics"]["stsb/spearman"]


@needs_data
def test_a_query_prompt_scores_as_the_same_text_written_into_the_file(tmp_path, sts_files):
    plain, prefixed = sts_files
    prompted = spearman(tmp_path, "prompted", f"eval.tasks.stsb.path={plain}", "model.prompts.query='query: '")
    written = spearman(tmp_path, "written", f"eval.tasks.stsb.path={prefixed}")
    unprompted = spearman(tmp_path, "plain", f"eval.tasks.stsb.path={plain}")
    assert prompted == pytest.approx(written, abs=1e-6) and abs(prompted - unprompted) > 1e-4
    params = run_of(tmp_path, tmp_path / "prompted").data.params
    assert params["prompts.query"] == "query: " and params["prompts.document"] == ""
    assert run_of(tmp_path, tmp_path / "plain").data.params["prompts.query"] == ""


@needs_data
def test_a_model_s_own_prompts_apply_unless_the_config_says_otherwise(tmp_path, sts_files, tiny_model):
    from sentence_transformers import SentenceTransformer

    folder = tmp_path / "prompted_model"
    SentenceTransformer(modules=list(tiny_model), prompts={"query": "query: ", "document": "passage: "},
                        device="cpu").save(str(folder))
    plain, _ = sts_files
    common = (f"model.name_or_path={folder}", f"eval.tasks.stsb.path={plain}")
    shipped = spearman(tmp_path, "shipped", *common)
    explicit = spearman(tmp_path, "explicit", *common, "model.prompts.query='query: '")
    none = spearman(tmp_path, "none", *common, "model.prompts.query=''")
    assert shipped == explicit and abs(shipped - none) > 1e-4


@needs_data
def test_training_prompts_both_sides_and_saves_the_prompts_with_the_model(tmp_path, scifact_slice, sts_files,
                                                                          tiny_model_path):
    from sentence_transformers import SentenceTransformer

    plain, _ = sts_files
    losses = {}
    template = "Instruct: {instruction} Query: {text}"
    for name, prompts in (("prompted", ["model.prompts.query='query: '", "model.prompts.document='passage: '",
                                        f"model.prompt_template='{template}'"]),
                          ("plain", [])):
        run_main("train", "trainer=debug", "trainer.log_every=1", f"model.name_or_path={tiny_model_path}",
                 f"data.root={scifact_slice}", "eval=sts", f"eval.tasks.stsb.path={plain}", "eval.cache=false",
                 f"hydra.run.dir={tmp_path / name}", *prompts, cwd=tmp_path)
        losses[name] = run_of(tmp_path, tmp_path / name).data.metrics["train/loss"]
    saved = json.loads((tmp_path / "prompted" / "model" / "config_sentence_transformers.json").read_text())
    assert saved["prompts"]["query"] == "query: " and saved["prompts"]["document"] == "passage: "
    assert SentenceTransformer(str(tmp_path / "prompted" / "model"), device="cpu").prompts["document"] == "passage: "
    config = json.loads((tmp_path / "prompted" / "model" / "config.json").read_text())
    assert config["embedbench_prompt_template"] == template  # the template, where transformers keeps it
    assert losses["prompted"] != losses["plain"]  # the trainer saw the prompted texts
