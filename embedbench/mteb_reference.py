"""mteb's own task classes over data held in memory: the reference every embedbench score is checked
against, offline (the tests, ``scripts/bench_*``). mteb comes with the ``test`` extra and is imported on use.

Each builder subclasses mteb's task type and overrides ``load_data`` with the given data, so mteb runs
its whole protocol (splits, sampling, seeds, metrics) on exactly the texts embedbench reads.
"""
from __future__ import annotations

from embedbench.data.beir import BeirDataset
from embedbench.data.tables import LabelledPairs, LabelledTexts, ScoredPairs


def local_task(base, task_type: str, main_score: str, load, **attributes):
    """An instance of a subclass of mteb's ``base`` whose ``load_data`` is ``load``."""
    from mteb.abstasks.task_metadata import TaskMetadata

    name = f"Local{base.__name__}"
    metadata = TaskMetadata(
        name=name, description="local data", reference="https://github.com/embeddings-benchmark/mteb",
        type=task_type, category="t2t", modalities=["text"], eval_splits=["test"], eval_langs=["eng-Latn"],
        main_score=main_score, dataset={"path": "local", "revision": "local"}, date=None, domains=None,
        task_subtypes=None, license=None, annotations_creators=None, dialect=None, sample_creation=None,
        bibtex_citation="")
    return type(name, (base,), {"metadata": metadata, "load_data": load, **attributes})()


def retrieval_task(ds: BeirDataset, top_ranked: dict[str, list[str]] | None = None):
    """mteb retrieval over ``ds``'s test split; with ``top_ranked`` candidates, mteb reranking."""
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

    def load(self, **kwargs):
        corpus = Dataset.from_list([{"id": d, "title": v["title"], "text": v["text"]} for d, v in ds.corpus.items()])
        queries = Dataset.from_list([{"id": q, "text": t} for q, t in ds.queries.items()])
        self.dataset = {"default": {"test": RetrievalSplitData(corpus=corpus, queries=queries,
                                                               relevant_docs=ds.qrels, top_ranked=top_ranked)}}
        self.data_loaded = True

    if top_ranked is None:
        return local_task(AbsTaskRetrieval, "Retrieval", "ndcg_at_10", load)
    return local_task(AbsTaskRetrieval, "Reranking", "map_at_1000", load)


def reranking_samples_task(samples: list[dict]):
    """mteb reranking over samples in its published format (``query``, ``positive`` and ``negative`` texts),
    converted by mteb's own conversion of that format."""
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.text import reranking

    def load(self, **kwargs):
        self.transform_old_dataset_format(DatasetDict({"test": Dataset.from_list(samples)}))

    task = local_task(reranking.AbsTaskReranking, "Reranking", "map_at_1000", load)
    if task.metadata.name not in reranking.OLD_FORMAT_RERANKING_TASKS:  # mteb converts the tasks listed there
        reranking.OLD_FORMAT_RERANKING_TASKS.append(task.metadata.name)
    return task


def sts_task(pairs: ScoredPairs):
    from datasets import Dataset
    from mteb.abstasks.sts import AbsTaskSTS

    def load(self, **kwargs):
        self.dataset = {"default": {"test": Dataset.from_dict(
            {"sentence1": pairs.sentences1, "sentence2": pairs.sentences2, "score": pairs.scores})}}
        self.data_loaded = True

    return local_task(AbsTaskSTS, "STS", "cosine_spearman", load)


def classification_task(train: LabelledTexts, test: LabelledTexts, label_ids: dict[str, int]):
    """mteb classification (v1 protocol) with labels turned to ids as ``label_ids`` says."""
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.classification import AbsTaskClassification

    def table(split: LabelledTexts):
        return Dataset.from_dict({"text": split.texts, "label": [label_ids[label] for label in split.labels]})

    def load(self, **kwargs):
        self.dataset = DatasetDict({"train": table(train), "test": table(test)})
        self.data_loaded = True

    return local_task(AbsTaskClassification, "Classification", "accuracy", load)


def clustering_task(data: LabelledTexts, sample: int | None = None, **attributes):
    """mteb's fast clustering, the texts first sampled by mteb's own ``stratified_subsampling``."""
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.clustering import AbsTaskClustering

    def load(self, **kwargs):
        full = DatasetDict({"test": Dataset.from_dict({"sentences": data.texts, "labels": data.labels})})
        extra = {"n_samples": sample} if sample else {}
        self.dataset = self.stratified_subsampling(full, self.seed, ["test"], label="labels", **extra)
        self.data_loaded = True

    return local_task(AbsTaskClustering, "Clustering", "v_measure", load,
                      **{"max_fraction_of_documents_to_embed": None, **attributes})


def pair_classification_task(pairs: LabelledPairs):
    from datasets import Dataset
    from mteb.abstasks.pair_classification import AbsTaskPairClassification

    def load(self, **kwargs):
        self.dataset = {"test": Dataset.from_dict({"sentence1": pairs.sentences1, "sentence2": pairs.sentences2,
                                                   "labels": pairs.labels})}
        self.data_loaded = True

    return local_task(AbsTaskPairClassification, "PairClassification", "max_ap", load)


def scores(model, task, batch_size: int = 32) -> dict:
    """mteb's scores of ``model`` (a SentenceTransformer or mteb encoder) on ``task``'s test split."""
    import mteb

    result = mteb.evaluate(model, task, cache=None, show_progress_bar=False, encode_kwargs={"batch_size": batch_size})
    return result.task_results[0].scores["test"][0]
