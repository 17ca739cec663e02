"""A user's own data through the eval job: a SICK-style file mapped by columns from a config folder of their
own (equal to mteb), collections of subsets, shipped tasks and BEIR archives fetched from a server when
found nowhere locally, and Hugging Face datasets saved to disk."""
import json
import zipfile

import pytest

from embedbench import mteb_reference
from embedbench.data.beir import load_beir, subsample, write_beir
from embedbench.data.tables import ScoredPairs, read_sts_benchmark
from tests.helpers import DATA, FileServer, needs_data, results_files, run_main

pytestmark = pytest.mark.slow

SICK_TASK = """# SICK relatedness, read as its release ships: tab-separated, with a header
defaults:
  - /schema/task/sts@tasks.sick

tasks:
  sick:
    path: {path}
    text1_column: sentence_A
    text2_column: sentence_B
    score_column: {score}
    min_score: 1
    max_score: 5
"""


def metrics_of(path) -> dict:
    return json.loads(path.read_text())["metrics"]


@needs_data
def test_a_sick_style_file_is_scored_through_column_mapping_equal_to_mteb(tmp_path, monkeypatch, minilm):
    stsb = read_sts_benchmark(DATA / "sts" / "stsbenchmark" / "sts-test.csv")
    pairs = ScoredPairs(stsb.sentences1[:120], stsb.sentences2[:120], [1 + 0.8 * s for s in stsb.scores[:120]])
    sick = tmp_path / "SICK_test.txt"
    sick.write_text("pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tentailment_AB\n" + "".join(
        f"{i}\t{a}\t{b}\tNEUTRAL\t{score:.3f}\tA_neutral_B\n"
        for i, (a, b, score) in enumerate(zip(pairs.sentences1, pairs.sentences2, pairs.scores))))
    folder = tmp_path / "my_conf" / "eval"
    folder.mkdir(parents=True)
    (folder / "sick.yaml").write_text(SICK_TASK.format(path=sick, score="relatedness_score"))
    monkeypatch.setenv("EMBEDBENCH_CONFIG_DIR", str(tmp_path / "my_conf"))
    run_main("eval", "eval=sick", cwd=tmp_path)
    reference = mteb_reference.scores(minilm, mteb_reference.sts_task(
        ScoredPairs(pairs.sentences1, pairs.sentences2, [round(s, 3) for s in pairs.scores])))
    assert metrics_of(results_files(tmp_path)[0])["sick/spearman"] == pytest.approx(reference["cosine_spearman"],
                                                                                    abs=1e-5)

    (folder / "sick.yaml").write_text(SICK_TASK.format(path=sick, score="entailment_label"))
    proc = run_main("eval", "eval=sick", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and len(results_files(tmp_path)) == 1
    assert proc.stderr.strip().splitlines()[-1] == (f"embedbench: error: {sick}:2: score column 'entailment_label': "
                                                    "'NEUTRAL' is not a number")


def test_a_collection_of_subsets_is_scored_subset_by_subset_and_averaged(tmp_path, scifact_slice, tiny_model_path,
                                                                          monkeypatch):
    """A CQADupStack-like archive from a server: two forums, each equal to a run of its own."""
    full = load_beir("scifact", scifact_slice, "test")
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "forums.zip", "w") as zf:
        for forum, seed in (("alpha", 1), ("beta", 2)):
            folder = write_beir(tmp_path / "build" / forum, subsample(full, 5, 40, seed=seed))
            for path in folder.rglob("*.*"):
                zf.write(path, f"forums/{forum}/{path.relative_to(folder)}")
    monkeypatch.setenv("EMBEDBENCH_CACHE", str(tmp_path / "cache"))
    model = f"model.name_or_path={tiny_model_path}"
    with FileServer(served) as server:
        run_main("eval", "eval=beir", model, "data.name=forums", f"data.url={server.url}/forums.zip",
                 "data.md5=null", "data.subsets=[alpha,beta]", cwd=tmp_path)
    metrics = metrics_of(results_files(tmp_path)[0])
    forums = tmp_path / "cache" / "beir" / "forums"
    for forum in ("alpha", "beta"):
        run_main("eval", "eval=beir", model, f"data.root={forums / forum}", cwd=tmp_path)
        alone = metrics_of(results_files(tmp_path)[-1])
        assert metrics[f"forums-{forum}/ndcg_at_10"] == pytest.approx(alone[f"{forum}/ndcg_at_10"], abs=1e-9)
    assert metrics["forums/ndcg_at_10"] == pytest.approx(
        (metrics["forums-alpha/ndcg_at_10"] + metrics["forums-beta/ndcg_at_10"]) / 2)


@needs_data
def test_a_shipped_task_found_nowhere_locally_is_fetched_and_checked(tmp_path, tiny_model_path, monkeypatch):
    """The shipped STS-B task's own checksum, its file served from 127.0.0.1 in place of its official source."""
    args = ["eval", "eval=sts", "eval.max_pairs=50", f"model.name_or_path={tiny_model_path}"]
    run_main(*args, cwd=tmp_path)  # from $EMBEDBENCH_DATA
    monkeypatch.delenv("EMBEDBENCH_DATA")
    monkeypatch.setenv("EMBEDBENCH_CACHE", str(tmp_path / "cache"))
    with FileServer(DATA / "sts" / "stsbenchmark") as server:
        run_main(*args, f"eval.tasks.stsb.download.path.url={server.url}/sts-test.csv", cwd=tmp_path)
        local, fetched = (metrics_of(p) for p in results_files(tmp_path))
        assert fetched["stsb/spearman"] == local["stsb/spearman"]
        assert (tmp_path / "cache" / "files" / "sts" / "stsbenchmark" / "sts-test.csv").is_file()
        (tmp_path / "served").mkdir()  # another file under the shipped name
        (tmp_path / "served" / "sts-test.csv").write_bytes((DATA / "sts/stsbenchmark/sts-dev.csv").read_bytes())
    with FileServer(tmp_path / "served") as server:
        proc = run_main(*args, "eval.tasks.stsb.path=elsewhere/sts-test.csv",
                        f"eval.tasks.stsb.download.path.url={server.url}/sts-test.csv", cwd=tmp_path, check=False)
        assert proc.returncode != 0 and "sts-test.csv: sha256 is" in proc.stderr and "was discarded" in proc.stderr
        mine = run_main(*args, "eval.tasks.stsb.path=mine/sts.csv",
                        f"eval.tasks.stsb.download.path.url={server.url}/sts-test.csv", cwd=tmp_path, check=False)
    assert mine.returncode != 0 and "mine/sts.csv: file not found" in mine.stderr  # never the shipped file
    assert len(server.requests) == 1


def test_a_hugging_face_dataset_saved_to_disk_scores_as_its_beir_folder(tmp_path, scifact_slice, tiny_model_path):
    from datasets import Dataset, DatasetDict

    ds = load_beir("scifact", scifact_slice, "test")
    hub = tmp_path / "hub"
    DatasetDict({"corpus": Dataset.from_list([{"_id": d, **doc} for d, doc in ds.corpus.items()])}).save_to_disk(
        hub / "corpus")
    DatasetDict({"queries": Dataset.from_list([{"_id": q, "text": t} for q, t in ds.queries.items()])}).save_to_disk(
        hub / "queries")
    judgements = [{"query-id": q, "corpus-id": d, "score": g} for q, docs in ds.qrels.items() for d, g in docs.items()]
    DatasetDict({"test": Dataset.from_list(judgements)}).save_to_disk(hub / "default")
    model = f"model.name_or_path={tiny_model_path}"
    run_main("eval", "eval=beir", model, f"data.root={scifact_slice}", cwd=tmp_path)
    run_main("eval", "eval=beir", model, f"data.hub={hub}", cwd=tmp_path)
    folder, from_hub = (metrics_of(p) for p in results_files(tmp_path))
    assert from_hub["scifact/ndcg_at_10"] == folder["scifact/ndcg_at_10"]
    proc = run_main("eval", "eval=beir", model, f"data.hub={hub}", "data.eval_split=dev", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "config 'default' has no split 'dev' (splits: test)" in proc.stderr
    asked = [{"_id": q, "text": None if i == 1 else t} for i, (q, t) in enumerate(ds.queries.items())]
    DatasetDict({"queries": Dataset.from_list(asked)}).save_to_disk(hub / "queries")
    proc = run_main("eval", "eval=beir", model, f"data.hub={hub}", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and f"data.hub={hub} queries:2: field 'text' is null, not a string" in proc.stderr


def test_a_longembed_layout_hub_dataset_scores_as_its_beir_folder(tmp_path, scifact_slice, tiny_model_path):
    """One config per task whose splits are corpus (doc_id), queries (qid) and qrels (qid, doc_id), as LongEmbed
    publishes its tasks; read through the shipped data config, pointed at a saved copy."""
    from datasets import Dataset, DatasetDict

    ds = load_beir("scifact", scifact_slice, "test")
    DatasetDict({
        "corpus": Dataset.from_list([{"doc_id": d, "text": ds.doc_text(d)} for d in ds.corpus]),
        "queries": Dataset.from_list([{"qid": q, "text": t} for q, t in ds.queries.items() if q in ds.qrels]),
        "qrels": Dataset.from_list([{"qid": q, "doc_id": d} for q, docs in ds.qrels.items() for d in docs]),
    }).save_to_disk(tmp_path / "hub" / "qmsum")
    model = f"model.name_or_path={tiny_model_path}"
    run_main("eval", "eval=beir", model, f"data.root={scifact_slice}", cwd=tmp_path)
    run_main("eval", "eval=longembed", model, "~eval.tasks.narrativeqa", "~eval.tasks.wikimqa",
             "~eval.tasks.summ_screen_fd", f"eval.tasks.qmsum.data.hub={tmp_path / 'hub'}", cwd=tmp_path)
    folder, from_hub = (metrics_of(p) for p in results_files(tmp_path))
    assert from_hub["qmsum/ndcg_at_10"] == pytest.approx(folder["scifact/ndcg_at_10"], abs=1e-9)
    assert from_hub["longembed/average"] == from_hub["qmsum/ndcg_at_10"]


def test_the_catalogue_names_mtebs_fifteen_collections_with_their_checksums():
    from embedbench.cli import compose_config
    from embedbench.composition import load

    tasks = load(compose_config("eval", ["eval=beir_all"])).eval.tasks
    assert len(tasks) == 15 and all(len(t.data.md5) == 32 and t.data.url.endswith(f"/{key}.zip")
                                    for key, t in tasks.items())
    assert {k for k, t in tasks.items() if t.data.ignore_identical_ids} == {"arguana", "quora"}
    assert {k: t.data.eval_split for k, t in tasks.items() if t.data.eval_split != "test"} == {"msmarco": "dev"}
    assert len(tasks["cqadupstack"].data.subsets) == 12
