"""Reduced retrieval corpora, as MMTEB cut its retrieval cost: every judged document plus the union of the
top-k documents of a few reference retrievers, written as a BEIR folder per k; and how faithfully each
reduced corpus ranks a set of systems, against the full corpus: Kendall's tau and Spearman's rho between
the systems' nDCG@10 on both, the fraction of documents kept, and the fraction of the corpus's tokens kept
(what encoding the reduced corpus costs against the full one, at the encoder's tokens per second).

Each system ranks the full corpus once; its ranking on a reduced corpus is that ranking restricted to the
kept documents, which is what exact search over the kept documents returns.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import kendalltau, spearmanr

from embedbench.atomic import atomic_dir, atomic_write
from embedbench.config import RunConfig
from embedbench.data.beir import BeirDataset, load_collection, write_beir
from embedbench.embedding.prompts import RETRIEVAL_DOCUMENT, RETRIEVAL_QUERY
from embedbench.errors import EmbedbenchError
from embedbench.models import load_scored_model
from embedbench.report import aligned
from embedbench.tasks.base import ScoredModel
from embedbench.tasks.retrieval import retrieval_metrics

DEPTH = 1000  # each system's ranking depth: the k of the largest reduction's pool and any system's top 10 in it
Ranking = dict[str, list[str]]  # query id -> document ids, best first


@dataclass
class Reduction:
    k: int
    kept: set[str]
    documents: int  # in the full corpus
    token_share: float  # of the full corpus's tokens
    full: dict[str, float]  # system -> nDCG@10 on the full corpus
    reduced: dict[str, float]  # system -> nDCG@10 on the kept documents

    @property
    def fraction(self) -> float:
        return len(self.kept) / self.documents

    @property
    def tau(self) -> float:
        return float(kendalltau(list(self.full.values()), list(self.reduced.values())).statistic)

    @property
    def rho(self) -> float:
        return float(spearmanr(list(self.full.values()), list(self.reduced.values())).statistic)


def rankings(model: ScoredModel, ds: BeirDataset, desc: str) -> dict[str, Ranking]:
    """Every variant the retriever searches with (a dense model: each view), as rankings of the full corpus."""
    qids, doc_ids = list(ds.queries), list(ds.corpus)
    found = model.retriever(()).retrieve(model.prompt([ds.queries[q] for q in qids], RETRIEVAL_QUERY),
                                         model.prompt([ds.doc_text(d) for d in doc_ids], RETRIEVAL_DOCUMENT),
                                         min(DEPTH, len(doc_ids)), desc)
    return {variant: {qid: [doc_ids[j] for j in row if j >= 0] for qid, row in zip(qids, result.ids)}
            for variant, result in found.items()}


def pool(ds: BeirDataset, references: Sequence[Ranking], k: int) -> set[str]:
    """Every judged document in the corpus (any grade) and each reference's top k for every query."""
    kept = {doc for docs in ds.qrels.values() for doc in docs if doc in ds.corpus}
    for ranking in references:
        kept.update(doc for docs in ranking.values() for doc in docs[:k])
    return kept


def ndcg_at_10(qrels, ranking: Ranking, kept: set[str] | None = None) -> float:
    run = {qid: {doc: float(-rank) for rank, doc in enumerate(d for d in docs if kept is None or d in kept)}
           for qid, docs in ranking.items()}
    return retrieval_metrics(qrels, run, ["ndcg_at_10"])["ndcg_at_10"]


def reduce(ds: BeirDataset, systems: dict[str, Ranking], references: Sequence[str], ks: Sequence[int],
           token_lengths: dict[str, int]) -> list[Reduction]:
    """One reduction per k; ``references`` name the systems whose top k are pooled."""
    missing = [name for name in references if name not in systems]
    if missing:
        raise ValueError(f"reference {missing[0]!r} is not among the systems")
    full = {name: ndcg_at_10(ds.qrels, ranking) for name, ranking in systems.items()}
    total_tokens = sum(token_lengths.values())
    out = []
    for k in ks:
        kept = pool(ds, [systems[name] for name in references], k)
        reduced = {name: ndcg_at_10(ds.qrels, ranking, kept) for name, ranking in systems.items()}
        out.append(Reduction(k, kept, len(ds.corpus), sum(token_lengths[d] for d in kept) / total_tokens, full,
                             reduced))
    return out


def write_reduced(ds: BeirDataset, reduction: Reduction, folder: Path, split: str) -> Path:
    """The reduced corpus as a BEIR folder (same queries and judgements), published whole."""
    corpus = {doc: text for doc, text in ds.corpus.items() if doc in reduction.kept}
    with atomic_dir(folder) as staging:
        write_beir(staging, BeirDataset(ds.name, corpus, ds.queries, ds.qrels), split)
    return folder


def table(reductions: Sequence[Reduction]) -> str:
    rows = [("k", "docs kept", "fraction", "tokens (encode cost)", "Kendall tau", "Spearman")]
    rows += [(str(r.k), f"{len(r.kept):,} of {r.documents:,}", f"{r.fraction:.3f}", f"{r.token_share:.3f}",
              f"{r.tau:.3f}", f"{r.rho:.3f}") for r in reductions]
    return aligned(rows)


def system_scores(reductions: Sequence[Reduction]) -> str:
    """nDCG@10 of every system on the full corpus and on each reduced one."""
    rows = [("system", "full", *(f"k={r.k}" for r in reductions))]
    rows += [(name, f"{score:.4f}", *(f"{r.reduced[name]:.4f}" for r in reductions))
             for name, score in reductions[0].full.items()]
    return aligned(rows, left=1)


def smallest_faithful(reductions: Sequence[Reduction], tau: float = 0.9) -> int | None:
    return next((r.k for r in sorted(reductions, key=lambda r: r.k) if r.tau >= tau), None)


def plot(reductions: Sequence[Reduction], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [r.k for r in reductions]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, [r.tau for r in reductions], "o-", label="Kendall tau (system ranking)")
    ax.plot(ks, [r.rho for r in reductions], "s-", label="Spearman rho")
    ax.plot(ks, [r.fraction for r in reductions], "^--", label="fraction of documents kept")
    ax.plot(ks, [r.token_share for r in reductions], "v--", label="fraction of tokens (encode cost)")
    ax.axhline(0.9, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("k (top-k of each reference retriever pooled)")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_reduce(systems_config: dict[str, RunConfig], references: Sequence[str], ks: Sequence[int],
               out_dir: Path) -> str:
    """Rank the collection of the first config's ``data`` with every system (each config's model: all its
    views), reduce it for each k, write the reduced folders, a plot and a summary under ``out_dir``; return
    the report."""
    first = next(iter(systems_config.values()))
    ds = load_collection(first.data, first.data.eval_split)
    systems, lengths = {}, None
    for label, cfg in systems_config.items():
        model = load_scored_model(cfg)
        found = rankings(model, ds, f"{label}: {len(ds.queries)} queries + {len(ds.corpus)} docs")
        systems.update({f"{label}{variant}": ranking for variant, ranking in found.items()})
        if lengths is None and model.views is not None:
            texts = model.prompt([ds.doc_text(d) for d in ds.corpus], RETRIEVAL_DOCUMENT)
            lengths = dict(zip(ds.corpus, model.embedder.encoder.token_lengths(texts)))
    if lengths is None:
        raise EmbedbenchError("reduce: no encoder among the systems to count tokens with")
    reductions = reduce(ds, systems, references, ks, lengths)
    out_dir.mkdir(parents=True, exist_ok=True)
    for r in reductions:
        write_reduced(ds, r, out_dir / f"{ds.name}-k{r.k}", first.data.eval_split)
    plot(reductions, out_dir / f"{ds.name}-reduction.png", f"{ds.name}: {len(systems)} systems")
    best = smallest_faithful(reductions)
    verdict = (f"smallest k with Kendall tau >= 0.9: {best}" if best is not None else
               "no k reaches Kendall tau 0.9")
    report = "\n".join([
        f"{ds.name}: {len(ds.corpus):,} documents, {len(ds.queries):,} queries, {len(systems)} systems; "
        f"pooled: judged documents + the top k of {', '.join(references)}", table(reductions), verdict,
        f"reduced folders: {out_dir}/{ds.name}-k<k>; plot: {out_dir}/{ds.name}-reduction.png"])
    with atomic_write(out_dir / f"{ds.name}-reduction.md") as fh:
        fh.write(f"```\n{report}\n\nnDCG@10 per system\n{system_scores(reductions)}\n```\n")
    return report
