"""Semantic textual similarity: Spearman of cosine against gold scores (mteb's main STS score)."""
from __future__ import annotations

from dataclasses import dataclass

from scipy.stats import spearmanr

from embedbench.data.files import data_file
from embedbench.data.sts import ScoredPairs, read_sts
from embedbench.views import ViewSet, cut


@dataclass
class STSTask:
    name: str
    pairs: ScoredPairs
    main_metric = "spearman"

    @classmethod
    def from_config(cls, name, task_cfg, cfg):
        pairs = read_sts(data_file(task_cfg.path, f"eval.tasks.{name}.path"))
        limit = cfg.eval.get("max_pairs")
        if limit:
            pairs = ScoredPairs(pairs.sentences1[:limit], pairs.sentences2[:limit], pairs.scores[:limit])
        return cls(name, pairs)

    def evaluate(self, embed, views: ViewSet) -> dict[str, float]:
        n = len(self.pairs.scores)
        pooled = embed(self.pairs.sentences1 + self.pairs.sentences2, f"{self.name}: {n} pairs")
        out = {}
        for view in views.views:
            emb = cut(pooled[view.layer], view.dim)
            cosine = (emb[:n] * emb[n:]).sum(-1).numpy()
            out[f"{self.name}/spearman{views.name(view)}"] = float(spearmanr(cosine, self.pairs.scores).statistic)
        return out
