"""The eval job: score a model (hub name, folder, run folder, or BM25) on every task, at every view."""
from __future__ import annotations

from pathlib import Path

from embedbench import distributed
from embedbench.composition import as_dict
from embedbench.config import ModelKind, RunConfig
from embedbench.models import load_scored_model
from embedbench.phases import Phases
from embedbench.report import RUNS, finish
from embedbench.tasks import build_tasks, check_scorable, score_tasks
from embedbench.tracking import Tracker


def run_eval(cfg: RunConfig, out_dir: Path, run_name: str, sweep_dir: str | None) -> tuple[dict[str, float], str]:
    """(metrics, the headline metric's name). Under torchrun every rank encodes a share of the texts and
    rank 0 does the rest; BM25 has nothing to share and runs on rank 0 alone."""
    shared = distributed.world_size() > 1 and cfg.model.kind == ModelKind.encoder
    if not distributed.is_main():
        if shared:
            from embedbench.embedding.ranks import serve

            serve(load_scored_model(cfg).embedder)
        return {}, None
    try:
        return _score(cfg, out_dir, run_name, sweep_dir, shared)
    finally:
        if shared:
            from embedbench.embedding.ranks import stop

            stop()


def _score(cfg: RunConfig, out_dir: Path, run_name: str, sweep_dir: str | None, shared: bool):
    config, phases = as_dict(cfg), Phases()
    with Tracker(cfg.logger, config, run_name, out_dir, sweep_dir) as tracker:
        with phases("loading"):
            tasks = build_tasks(cfg.eval, cfg.data, list(cfg.index.values()), cfg.seed)
            model = load_scored_model(cfg, phases, shared)
            check_scorable(tasks, model, cfg.model.name)
            tracker.log_params(model.params())
        metrics = score_tasks(tasks, model, phases, out_dir / RUNS if cfg.eval.save_runs else None)
        model.log_stats()
        headline = finish("eval", tracker, out_dir, phases, tasks, model.views, metrics, config, cfg.eval.suite)
        return metrics, headline
