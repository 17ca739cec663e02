"""Classification with mteb's protocol (AbsTaskClassification, v1 sampling).

``n_experiments`` times: draw ``samples_per_label`` training texts per label, fit a logistic
regression on their embeddings, report accuracy on the test split; the mean is the score. The
draws copy mteb's exactly (a fresh ``RandomState(seed)`` re-shuffling the previous order each
experiment), so the score is the number mteb gives, and every view sees the same draws.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from embedbench.config import ClassificationTaskConfig
from embedbench.data.tables import LabelledTexts
from embedbench.embedding.prompts import CLASSIFICATION
from embedbench.errors import EmbedbenchError
from embedbench.tasks.base import ScoredModel, TaskBase


def undersample(labels: list, n_experiments: int, samples_per_label: int, seed: int) -> list[list[int]]:
    """The training rows of each experiment, as mteb's ``_undersample_data`` picks them."""
    order = list(range(len(labels)))
    picks = []
    for _ in range(n_experiments):
        np.random.RandomState(seed).shuffle(order)  # mteb re-shuffles the already shuffled order
        taken: dict = defaultdict(int)
        chosen = []
        for i in order:
            if taken[labels[i]] < samples_per_label:
                chosen.append(i)
                taken[labels[i]] += 1
        picks.append(chosen)
    return picks


def label_ids(*splits: LabelledTexts) -> dict[str, int]:
    """Label names to ids, names sorted case-insensitively (as mteb's ClassLabel ids are)."""
    names = sorted({label for split in splits for label in split.labels}, key=lambda s: (s.lower(), s))
    return {name: i for i, name in enumerate(names)}


@dataclass
class ClassificationTask(TaskBase):
    train: LabelledTexts
    test: LabelledTexts
    n_experiments: int = 10
    samples_per_label: int = 8
    max_iter: int = 100
    seed: int = 42
    main_metric = "accuracy"

    @classmethod
    def load(cls, spec: ClassificationTaskConfig, train: LabelledTexts, test: LabelledTexts,
             sources: tuple[str, str] | None = None) -> ClassificationTask:
        """``sources``: where the train and test texts were read (a file, a Hub split), as errors name them."""
        train_source, test_source = sources or (spec.train, spec.test)
        if len(set(train.labels)) < 2:
            raise EmbedbenchError(f"{train_source}: every text has the label {train.labels[0]!r}; a classifier "
                                  "needs two labels at least (is the label column right?)")
        unseen = sorted(set(test.labels) - set(train.labels))
        if unseen:
            raise EmbedbenchError(f"{test_source}: label {unseen[0]!r} never occurs in {train_source}")
        return cls(spec.name, train, test, spec.n_experiments, spec.samples_per_label, spec.max_iter, spec.seed,
                   instruction=spec.instruction)

    def evaluate(self, model: ScoredModel) -> dict[str, float]:
        ids = label_ids(self.train, self.test)
        y_train = np.array([ids[label] for label in self.train.labels])
        y_test = np.array([ids[label] for label in self.test.labels])
        picks = undersample(list(y_train), self.n_experiments, self.samples_per_label, self.seed)
        rows = sorted(set().union(*picks))  # only texts some experiment trains on are encoded
        position = {row: i for i, row in enumerate(rows)}
        texts = model.prompt([self.train.texts[r] for r in rows] + self.test.texts, CLASSIFICATION, self.instruction)
        pooled = model.embed(texts, f"{self.name}: {len(rows)} train + {len(self.test.texts)} test texts")
        out = {}
        for view in model.views.views:
            emb = model.views.features(pooled, view).numpy()
            train_emb, test_emb = emb[: len(rows)], emb[len(rows):]
            accuracy, f1 = [], []
            for chosen in picks:
                classifier = LogisticRegression(max_iter=self.max_iter, random_state=self.seed)
                classifier.fit(train_emb[[position[r] for r in chosen]], y_train[chosen])
                predicted = classifier.predict(test_emb)
                accuracy.append(accuracy_score(y_test, predicted))
                f1.append(f1_score(y_test, predicted, average="macro"))
            suffix = model.views.name(view)
            out[f"{self.name}/accuracy{suffix}"] = float(np.mean(accuracy))
            out[f"{self.name}/f1{suffix}"] = float(np.mean(f1))
        return out
