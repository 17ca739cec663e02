"""Semantic textual similarity: Spearman of cosine against gold scores (mteb's main STS score)."""
from __future__ import annotations

from dataclasses import dataclass

from scipy.stats import spearmanr

from embedbench.data.tables import ScoredPairs
from embedbench.embedding.prompts import STS
from embedbench.embedding.views import cut
from embedbench.tasks.base import ScoredModel, TaskBase, slice_note


@dataclass
class STSTask(TaskBase):
    pairs: ScoredPairs
    main_metric = "spearman"

    @classmethod
    def load(cls, name: str, full: ScoredPairs, max_pairs: int | None = None,
             instruction: str | None = None) -> STSTask:
        pairs = ScoredPairs(full.sentences1[:max_pairs], full.sentences2[:max_pairs], full.scores[:max_pairs])
        task = cls(name, pairs, instruction=instruction)
        task.sliced = slice_note({"pairs": (len(pairs.scores), len(full.scores))})
        return task

    def evaluate(self, model: ScoredModel) -> dict[str, float]:
        n = len(self.pairs.scores)
        texts = model.prompt(self.pairs.sentences1 + self.pairs.sentences2, STS, self.instruction)
        pooled = model.embed(texts, f"{self.name}: {n} pairs")
        out = {}
        for view in model.views.views:
            emb = cut(pooled[view.layer], view.dim)
            cosine = (emb[:n] * emb[n:]).sum(-1).numpy()
            spearman = spearmanr(cosine, self.pairs.scores).statistic
            out[f"{self.name}/spearman{model.views.name(view)}"] = float(spearman)
        return out
