"""Classification, clustering and pair classification: equal to mteb's scores on real slices,
protocol pieces checked by hand, and the readers' errors."""
import numpy as np
import pytest

from conftest import DATA, embed_with, mteb_scores, mteb_task
from embedbench.data.tables import LabelledPairs, LabelledTexts, read_labelled, read_labelled_pairs, \
    read_line_aligned
from embedbench.errors import EmbedbenchError
from embedbench.tasks.classification import ClassificationTask, label_ids, undersample
from embedbench.tasks.clustering import ClusteringTask, stratified_sample
from embedbench.tasks.pair_classification import PairClassificationTask
from embedbench.views import build_views

BANKING = DATA / "classification" / "banking77"
STACKOVERFLOW = DATA / "clustering" / "stackoverflow"
MRPC = DATA / "pair_classification" / "mrpc" / "msr_paraphrase_test.txt"


@pytest.fixture(scope="module")
def views(encoder):
    return build_views({"dims": [384, 64]}, encoder.n_layers, encoder.hidden_size)


def _keep_labels(data: LabelledTexts, labels: set) -> LabelledTexts:
    rows = [i for i, label in enumerate(data.labels) if label in labels]
    return LabelledTexts([data.texts[i] for i in rows], [data.labels[i] for i in rows])


def test_classification_equals_mteb_on_banking77_slice(minilm, encoder, views):
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.classification import AbsTaskClassification

    train, test = read_labelled(BANKING / "train.csv", "text", "category"), read_labelled(BANKING / "test.csv", "text",
                                                                                         "category")
    intents = set(sorted(set(train.labels))[:6])
    train, test = _keep_labels(train, intents), _keep_labels(test, intents)
    ids = label_ids(train, test)

    def load(self, **kwargs):
        self.dataset = DatasetDict({split: Dataset.from_dict({"text": d.texts, "label": [ids[x] for x in d.labels]})
                                    for split, d in (("train", train), ("test", test))})
        self.data_loaded = True

    reference = mteb_scores(minilm, mteb_task(AbsTaskClassification, "Classification", "accuracy", load))
    ours = ClassificationTask("banking77", train, test).evaluate(embed_with(encoder, views), views)
    assert ours["banking77/accuracy"] == pytest.approx(reference["accuracy"], abs=2e-3)
    assert ours["banking77/f1"] == pytest.approx(reference["f1"], abs=2e-3)
    assert 0 < ours["banking77/accuracy/d64"] < 1


def test_undersampling_reshuffles_like_mteb():
    labels = [0, 0, 0, 1, 1, 1, 2]
    picks = undersample(labels, 3, 2, seed=42)
    order = list(range(7))
    for chosen in picks:  # experiment k: the order shuffled k times, each time by a fresh RandomState(42)
        np.random.RandomState(42).shuffle(order)
        first_two = [i for n, i in enumerate(order) if [labels[j] for j in order[:n]].count(labels[i]) < 2]
        assert chosen == first_two and sorted(labels[i] for i in chosen) == [0, 0, 1, 1, 2]
    assert picks[0] != picks[1]


def test_clustering_equals_mteb_on_stackoverflow_sample(minilm, encoder, views):
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.clustering import AbsTaskClustering

    data = read_line_aligned(STACKOVERFLOW / "StackOverflow.txt", STACKOVERFLOW / "StackOverflow_gnd.txt")

    def load(self, **kwargs):
        full = DatasetDict({"test": Dataset.from_dict({"sentences": data.texts, "labels": data.labels})})
        self.dataset = self.stratified_subsampling(full, self.seed, ["test"], label="labels", n_samples=400)
        self.data_loaded = True

    reference = mteb_scores(minilm, mteb_task(AbsTaskClustering, "Clustering", "v_measure", load,
                                              max_fraction_of_documents_to_embed=None,
                                              max_documents_per_cluster=1000))
    task = ClusteringTask("stackoverflow", stratified_sample(data, 400, 42), round_size=1000)
    assert sorted(set(task.data.labels)) == sorted(set(data.labels)) and len(task.data.texts) == 400
    ours = task.evaluate(embed_with(encoder, views), views)
    assert ours["stackoverflow/v_measure"] == pytest.approx(reference["v_measure"], abs=2e-3)


def test_pair_classification_equals_mteb_on_mrpc_slice(minilm, encoder, views):
    from datasets import Dataset
    from mteb.abstasks.pair_classification import AbsTaskPairClassification

    full = read_labelled_pairs(MRPC, "#1 String", "#2 String", "Quality")
    pairs = LabelledPairs(full.sentences1[:300], full.sentences2[:300], full.labels[:300])

    def load(self, **kwargs):
        self.dataset = {"test": Dataset.from_dict({"sentence1": pairs.sentences1, "sentence2": pairs.sentences2,
                                                   "labels": pairs.labels})}
        self.data_loaded = True

    reference = mteb_scores(minilm, mteb_task(AbsTaskPairClassification, "PairClassification", "max_ap", load))
    ours = PairClassificationTask("mrpc", pairs).evaluate(embed_with(encoder, views), views)
    assert ours["mrpc/ap"] == pytest.approx(reference["max_ap"], abs=2e-3)
    assert ours["mrpc/cosine_ap"] == pytest.approx(reference["cosine_ap"], abs=2e-3)


def test_real_files_read_with_their_quirks():
    banking = read_labelled(BANKING / "train.csv", "text", "category")
    assert len(banking.texts) == 10003 and len(set(banking.labels)) == 77
    assert any("\n" in t for t in banking.texts)  # quoted multi-line fields parsed by csv
    mrpc = read_labelled_pairs(MRPC, "#1 String", "#2 String", "Quality")
    assert (len(mrpc.labels), sum(mrpc.labels)) == (1725, 1147)  # BOM stripped, quotes kept, no trailing newline
    so = read_line_aligned(STACKOVERFLOW / "StackOverflow.txt", STACKOVERFLOW / "StackOverflow_gnd.txt")
    assert len(so.texts) == 20000 and {so.labels.count(x) for x in set(so.labels)} == {1000}


def test_stratified_sample_keeps_label_proportions():
    data = LabelledTexts([f"t{i}" for i in range(400)], ["a"] * 300 + ["b"] * 100)
    sample = stratified_sample(data, 40, 42)
    assert (sample.labels.count("a"), sample.labels.count("b")) == (30, 10)
    assert stratified_sample(data, 40, 42) == sample and stratified_sample(data, None, 42) is data


@pytest.mark.parametrize("content, message", [
    ("text,category\nhello,a\nbye\n", r"train\.csv:3: expected 2 fields"),
    ("words,category\nhello,a\n", r"train\.csv:1: header has no column 'text'"),
    ("text,category\n", r"train\.csv: no rows"),
])
def test_bad_classification_table_is_named(tmp_path, content, message):
    (tmp_path / "train.csv").write_text(content)
    with pytest.raises(EmbedbenchError, match=message):
        read_labelled(tmp_path / "train.csv", "text", "category")


def test_bad_pair_label_and_misaligned_clustering_files_are_named(tmp_path):
    (tmp_path / "pairs.tsv").write_text("label\ts1\ts2\n1\ta\tb\nyes\tc\td\n")
    with pytest.raises(EmbedbenchError, match=r"pairs\.tsv:3: label 'yes' is not 0 or 1"):
        read_labelled_pairs(tmp_path / "pairs.tsv", "s1", "s2", "label")
    (tmp_path / "texts.txt").write_text("a\nb\nc\n")
    (tmp_path / "labels.txt").write_text("1\n2\n")
    with pytest.raises(EmbedbenchError, match=r"labels\.txt: 2 labels for 3 texts"):
        read_line_aligned(tmp_path / "texts.txt", tmp_path / "labels.txt")


def test_suite_average_is_the_mean_of_main_scores_per_view(encoder):
    from embedbench.evaluate import suite_average

    views = build_views({"dims": [384, 64]}, encoder.n_layers, encoder.hidden_size)
    metrics = {"a/acc": 0.5, "a/acc/d64": 0.25, "b/ap": 1.0, "b/ap/d64": 0.75, "b/other": 9.0}
    assert suite_average(metrics, {"a": "acc", "b": "ap"}, views, "lite") == {"lite/average": 0.75,
                                                                              "lite/average/d64": 0.5}


def test_mteb_adapter_scores_every_view_from_one_encoding(minilm, encoder):
    from datasets import Dataset
    from mteb.abstasks.sts import AbsTaskSTS

    from embedbench.data.sts import ScoredPairs, read_sts
    from embedbench.tasks.mteb_tasks import MtebTasks
    from embedbench.tasks.sts import STSTask

    full = read_sts(DATA / "sts" / "stsbenchmark" / "sts-test.csv")
    pairs = ScoredPairs(full.sentences1[:120], full.sentences2[:120], full.scores[:120])

    def load(self, **kwargs):
        self.dataset = {"default": {"test": Dataset.from_dict(
            {"sentence1": pairs.sentences1, "sentence2": pairs.sentences2, "score": pairs.scores})}}
        self.data_loaded = True

    views = build_views({"dims": [384, 64]}, encoder.n_layers, encoder.hidden_size)
    calls = []
    embed = embed_with(encoder, views)
    counted = lambda texts, desc: calls.append(len(texts)) or embed(texts, desc)  # noqa: E731
    adapter = MtebTasks([mteb_task(AbsTaskSTS, "STS", "cosine_spearman", load)])
    ours = adapter.evaluate(counted, views)
    direct = STSTask("stsb", pairs).evaluate(embed, views)
    assert ours["LocalAbsTaskSTS/main_score"] == pytest.approx(direct["stsb/spearman"], abs=1e-4)
    assert ours["LocalAbsTaskSTS/main_score/d64"] == pytest.approx(direct["stsb/spearman/d64"], abs=1e-4)
    assert adapter.main_by_task == {"LocalAbsTaskSTS": "main_score"}
    assert len(calls) == 2  # sentence1 and sentence2 lists, encoded for the first view only


def test_mteb_adapter_offline_is_a_clear_error(monkeypatch):
    from huggingface_hub import constants

    from embedbench.tasks.mteb_tasks import MtebTasks

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(EmbedbenchError, match=r"eval=mteb: tasks \['STSBenchmark'\] .* offline"):
        MtebTasks.from_names(["STSBenchmark"])


def test_jsonl_labelled_table_and_its_errors(tmp_path):
    path = tmp_path / "clusters.jsonl"
    path.write_text('{"text": "how to sort a list", "label": 3}\n\n{"text": "pandas merge", "label": 7}\n')
    assert read_labelled(path) == LabelledTexts(["how to sort a list", "pandas merge"], ["3", "7"])
    path.write_text('{"text": "a", "label": 1}\n{"text": "b"}\n')
    with pytest.raises(EmbedbenchError, match=r"clusters\.jsonl:2: missing field 'label'"):
        read_labelled(path)
