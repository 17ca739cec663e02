"""Several training sets at once: labelled tables made into pairs, sources kept apart or mixed, each with its
instruction on the trainer's query side; and a run that trains on two sources end to end."""
import json

import pytest

from embedbench.config import DataConfig, SourceConfig
from embedbench.data.pairs import labelled_pairs, training_sets
from embedbench.embedding.prompts import Prompts
from embedbench.errors import EmbedbenchError
from embedbench.jobs.train import trainer_prompts
from tests.helpers import mlflow_runs, needs_data, run_main

INTENTS = [("card lost", "lost_card"), ("my card is gone", "lost_card"), ("where is my card", "lost_card"),
           ("rate for euros", "exchange"), ("dollar exchange rate", "exchange"), ("top up failed", "top_up"),
           ("only one text here", "lonely")]


@pytest.fixture
def intents(tmp_path):
    path = tmp_path / "intents.csv"
    path.write_text("text,category\n" + "".join(f"{text},{label}\n" for text, label in INTENTS))
    return path


def labelled(path, **settings) -> SourceConfig:
    return SourceConfig(name="intents", format="labelled", train=str(path), label_column="category", **settings)


def test_a_labelled_table_gives_a_positive_of_the_same_label_and_a_negative_of_another(intents):
    label = dict(INTENTS)
    pairs = labelled_pairs(labelled(intents), None, seed=3)
    assert pairs.column_names == ["anchor", "positive", "negative_1"]
    assert len(pairs) == 5  # top_up and lonely have no second text
    for row in pairs:
        assert row["positive"] != row["anchor"] and label[row["positive"]] == label[row["anchor"]]
        assert label[row["negative_1"]] != label[row["anchor"]]
    assert labelled_pairs(labelled(intents), None, seed=3).to_dict() == pairs.to_dict()
    assert len(labelled_pairs(labelled(intents), 2, seed=3)) == 2


def test_sources_are_kept_apart_or_mixed_only_when_they_fit_together(intents, tmp_path):
    scored = tmp_path / "pairs.tsv"
    scored.write_text("".join(f"g\tf\t2012\t{i}\t{i % 5}.0\tsentence {i}\tsentence {i + 1}\n" for i in range(6)))
    sources = {"intents": labelled(intents), "sts": SourceConfig(name="sts", format="scored_pairs", train=str(scored))}
    apart = training_sets(DataConfig(name="x", sources=sources, sampler="same_source"), None, 0, None, None)
    assert set(apart) == {"intents", "sts"} and apart["sts"].column_names == ["sentence1", "sentence2", "label"]
    with pytest.raises(EmbedbenchError, match="intents has anchor, positive, negative_1; sts has sentence1"):
        training_sets(DataConfig(name="x", sources=sources), None, 0, None, None)
    twins = {"a": labelled(intents), "b": labelled(intents)}
    assert len(training_sets(DataConfig(name="x", sources=twins), None, 0, None, None)) == 10
    twins["b"] = labelled(intents, instruction="Find the intent")
    with pytest.raises(EmbedbenchError, match="differ in instruction"):
        training_sets(DataConfig(name="x", sources=twins), None, 0, None, None)
    twins["b"] = SourceConfig(name="b", format="scored_pairs", train=str(scored), min_score=3)
    with pytest.raises(EmbedbenchError, match=r"^data.sources.b: .*pairs.tsv:1: score column 4: 0.0 is outside"):
        training_sets(DataConfig(name="x", sources=twins), None, 0, None, None)


def test_each_source_s_instruction_goes_on_its_anchors_through_the_template(intents):
    prompts = Prompts("q: ", "d: ", "q: ", "Instruct: {instruction}\nQuery: {text}")
    sources = {"intents": labelled(intents, instruction="Find the intent"), "plain": labelled(intents)}
    data = DataConfig(name="x", sources=sources, sampler="same_source")
    sets = training_sets(data, None, 0, None, None)
    assert trainer_prompts(prompts, data, sets) == {
        "intents": {"anchor": "Instruct: Find the intent\nQuery: ", "positive": "d: ", "negative_1": "d: "},
        "plain": {"anchor": "q: ", "positive": "d: ", "negative_1": "d: "}}


@needs_data
@pytest.mark.slow
def test_two_sources_train_one_model_with_in_batch_negatives_off_for_one(tmp_path, scifact_slice, intents,
                                                                        tiny_model_path):
    run_main("train", "experiment=instruction_tuning", f"model.name_or_path={tiny_model_path}",
             f"data.root={scifact_slice}", f"data.sources.scifact.root={scifact_slice}",
             "data.sources.scifact.negatives=null", f"data.sources.banking77.train={intents}", "trainer=debug",
             "trainer.log_every=1", "eval.max_pairs=50", "eval.max_queries=10", "eval.max_docs=100",
             f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {"stsb/spearman", "banking77/accuracy", "mteb_lite/average"} <= set(results["metrics"])
    proc = run_main("train", "experiment=instruction_tuning", "eval=sts", cwd=tmp_path, check=False)
    assert "eval.tasks.beir: instruction set for a task that eval= does not have" in proc.stderr
    [run] = mlflow_runs(tmp_path)
    assert run.data.params["data.sources.banking77.in_batch_negatives"] == "False"
    assert "train/loss" in run.data.metrics
