"""The eval job, and the scoring step the train job ends with."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from omegaconf import OmegaConf

from embedbench.cache import EmbeddingCache, model_fingerprint
from embedbench.encoder import LayerEncoder, load_encoder, resolve_batch_size, resolve_device, resolve_encoding
from embedbench.errors import EmbedbenchError
from embedbench.lexical import BM25
from embedbench.plots import diagonal_curve, dim_curve, grid_heatmap, index_pareto
from embedbench.sharding import EncoderPool, resolve_devices
from embedbench.tasks import load_tasks
from embedbench.tracking import Tracker, write_json_atomic
from embedbench.views import View, ViewSet, build_views, with_grid

log = logging.getLogger(__name__)


def open_cache(eval_cfg) -> EmbeddingCache | None:
    if not eval_cfg.get("cache"):
        return None
    return EmbeddingCache(Path(eval_cfg.cache_dir), float(eval_cfg.cache_max_gb) * 2**30)


def embedder(encoder: LayerEncoder, layers: list[int], encode_cfg, cache: EmbeddingCache | None = None):
    """``embed(texts, desc) -> {layer: embeddings}``: one encoding pass, or the cache's copy."""
    precision, backend = resolve_encoding(encode_cfg, encoder.device.type)
    model_key = model_fingerprint(encoder, precision, backend) if cache else None
    batch_size = resolve_batch_size(encode_cfg.batch_size, encoder.device.type)
    devices = resolve_devices(encode_cfg.get("devices", "auto"), encoder.device.type)
    engine = None  # a runtime, or a pool of device workers: built at the first miss, then reused

    def encode(texts, desc):
        nonlocal engine
        if len(devices) > 1:
            engine = engine or EncoderPool(encoder, devices, precision, backend, batch_size)
            return engine.encode(texts, layers, desc)
        engine = engine or encoder.runtime(precision, backend)
        return encoder.encode(texts, layers, batch_size, desc=desc, runtime=engine)

    def embed(texts, desc):
        pooled = cache.get(model_key, texts, layers) if cache else None
        if pooled is None:
            pooled = encode(texts, desc)
            if cache:
                cache.put(model_key, texts, pooled)
        return pooled

    return embed


def score(tasks, encoder: LayerEncoder, views: ViewSet, encode_cfg, cache: EmbeddingCache | None = None
          ) -> dict[str, float]:
    """Every task, every view; each task's texts encoded once for all views (or read from the cache)."""
    embed = embedder(encoder, views.layers, encode_cfg, cache)
    metrics = {}
    for task in tasks:
        start = time.perf_counter()
        metrics.update(task.evaluate(embed, views))
        metrics[f"{task.name}/eval_s"] = time.perf_counter() - start
    if cache:
        log.info("embedding cache: %d hits, %d misses", cache.hits, cache.misses)
    return metrics


def suite_average(metrics: dict[str, float], main: dict[str, str], views: ViewSet, suite: str) -> dict[str, float]:
    """``<suite>/average`` per view: the unweighted mean of each task's main score, as MTEB averages."""
    return {f"{suite}/average{views.name(v)}":
            sum(metrics[f"{task}/{metric}{views.name(v)}"] for task, metric in main.items()) / len(main)
            for v in views.views}


def finish(cfg, tracker: Tracker, out_dir: Path, tasks, views: ViewSet, metrics: dict[str, float]) -> None:
    """Log metrics and figures, then write results.json last: it exists only for a complete run."""
    main = {}
    for task in tasks:  # an mteb task list reports one main score per mteb task
        main.update(getattr(task, "main_by_task", None) or {task.name: task.main_metric})
    suite = cfg.eval.get("suite")
    if suite:
        metrics.update(suite_average(metrics, main, views, suite))
        main[suite] = "average"
    tracker.log_metrics(metrics)
    figures = [dim_curve(metrics, views, main, out_dir / "metric_vs_dim.png"),
               diagonal_curve(metrics, views, main, out_dir / "metric_along_diagonal.png"),
               *(grid_heatmap(metrics, views, task, metric, out_dir / f"grid_{task}.png")
                 for task, metric in main.items()),
               *(index_pareto(metrics, views, task.name, main[task.name], [s.name for s in task.indexes],
                              out_dir / f"index_pareto_{task.name}.png")
                 for task in tasks if getattr(task, "indexes", ()))]
    for figure in filter(None, figures):
        tracker.log_artifact(figure, "plots")
    payload = {"metrics": metrics, "mlflow_run_id": tracker.run_id,
               "config": OmegaConf.to_container(cfg, resolve=True)}
    tracker.client.log_dict(tracker.run_id, payload, "results.json")
    write_json_atomic(out_dir / "results.json", payload)
    print_summary(main, views, metrics)


def print_summary(main: dict[str, str], views: ViewSet, metrics: dict[str, float]) -> None:
    """Each task's main score for every view and index variant, one line per task."""
    for task, metric in main.items():
        head = f"{task}/{metric}"
        cells = [f"{key[len(head):].lstrip('/') or 'full'}={value:.5f}" for key, value in metrics.items()
                 if key == head or key.startswith(head + "/")]
        print(f"{head}: " + "  ".join(cells))


def score_lexical(tasks, model_cfg) -> dict[str, float]:
    """A lexical model's scores: retrieval tasks only, through their lexical search path."""
    for task in tasks:
        if not hasattr(task, "evaluate_lexical"):
            raise EmbedbenchError(f"model={model_cfg.name} scores retrieval tasks only, and eval.tasks has "
                                  f"{task.name} ({type(task).__name__}); choose eval=beir")
    bm25 = BM25(model_cfg.k1, model_cfg.b, model_cfg.method, model_cfg.stemmer, model_cfg.stopwords)
    metrics = {}
    for task in tasks:
        metrics.update(task.evaluate_lexical(bm25))
    return metrics


def run_eval(cfg, out_dir: Path, run_name: str, sweep_dir: str | None) -> dict[str, float]:
    with Tracker(cfg, run_name, sweep_dir) as tracker:
        tasks = load_tasks(cfg)
        if cfg.model.get("kind") == "lexical":
            metrics = score_lexical(tasks, cfg.model)
            finish(cfg, tracker, out_dir, tasks, ViewSet((View(1, 1),), 1, 1), metrics)
            return metrics
        encoder = load_encoder(cfg.model.name_or_path, resolve_device(cfg.device), cfg.model.max_seq_length,
                               cfg.model.trust_remote_code)
        views = with_grid(build_views(cfg.model.views, encoder.n_layers, encoder.hidden_size), cfg.eval.get("grid"))
        metrics = score(tasks, encoder, views, cfg.encode, open_cache(cfg.eval))
        finish(cfg, tracker, out_dir, tasks, views, metrics)
        return metrics
