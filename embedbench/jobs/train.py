"""The train job: data -> sentence-transformers' trainer with a view objective -> save -> score -> report."""
from __future__ import annotations

import time
from pathlib import Path

from transformers import TrainerCallback, set_seed

from embedbench import distributed
from embedbench.composition import as_dict
from embedbench.config import ModelKind, TrainRunConfig
from embedbench.data.pairs import training_pairs
from embedbench.data.sampler import batch_sampler
from embedbench.embedding.cache import open_cache
from embedbench.embedding.embedder import Embedder
from embedbench.embedding.encoder import load_encoder, resolve_device
from embedbench.embedding.views import build_views
from embedbench.errors import EmbedbenchError
from embedbench.losses import build_objective
from embedbench.models import encoder_model
from embedbench.report import finish
from embedbench.tasks import build_tasks, score_tasks
from embedbench.tracking import RUN_FILE, NullTracker, Tracker


class LogToTracker(TrainerCallback):
    """Training loss, learning rate and epoch per logging step into the job's MLflow run."""

    NAMES = {"loss": "train/loss", "learning_rate": "train/learning_rate", "epoch": "train/epoch",
             "grad_norm": "train/grad_norm"}

    def __init__(self, tracker: Tracker):
        self.tracker = tracker

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            values = {self.NAMES[k]: v for k, v in logs.items() if k in self.NAMES}
            if values:
                self.tracker.log_metrics(values, step=state.global_step)


def fit(cfg: TrainRunConfig, model, objective, dataset, out_dir: Path, device: str, tracker: Tracker,
        resume: bool = False, sampler="no_duplicates") -> None:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    t = cfg.trainer
    bf16 = device.startswith("cuda") if t.bf16 == "auto" else t.bf16
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out_dir / "checkpoints"),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        warmup_steps=float(t.warmup),
        weight_decay=t.weight_decay,
        bf16=bf16,
        seed=cfg.seed,
        data_seed=cfg.seed,
        batch_sampler=sampler,
        logging_steps=t.log_every,
        save_strategy="steps",
        save_steps=t.save_every,
        save_total_limit=2,
        report_to="none",
        use_cpu=device == "cpu",
        disable_tqdm=False,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=objective,
                                         callbacks=[LogToTracker(tracker)])
    # resuming restores weights (in place: the objective wraps this same model), optimizer, scheduler,
    # RNG states and the position in the data order from the last checkpoint
    trainer.train(resume_from_checkpoint=True if resume else None)


def resumable(folder: Path) -> tuple[Path, str]:
    """(run folder, MLflow run id) of an interrupted train run that left a checkpoint."""
    if not list(folder.glob("checkpoints/checkpoint-*")):
        raise EmbedbenchError(f"trainer.resume={folder}: no checkpoint in {folder / 'checkpoints'} "
                              "(a run saves one every trainer.save_every steps)")
    if not (folder / RUN_FILE).is_file():
        raise EmbedbenchError(f"trainer.resume={folder}: no {RUN_FILE}; not an embedbench train run folder")
    return folder, (folder / RUN_FILE).read_text().strip()


def run_train(cfg: TrainRunConfig, out_dir: Path, run_name: str, sweep_dir: str | None) -> dict[str, float]:
    if cfg.model.kind == ModelKind.lexical:
        raise EmbedbenchError(f"model={cfg.model.name} has nothing to train; score it with `embedbench eval "
                              f"model={cfg.model.name}`")
    resume_run_id = None
    if cfg.trainer.resume:
        out_dir, resume_run_id = resumable(Path(cfg.trainer.resume))
    set_seed(cfg.seed)
    config = as_dict(cfg)
    tracker = (Tracker(cfg.logger, config, run_name, sweep_dir, out_dir / RUN_FILE, resume_run_id)
               if distributed.is_main() else NullTracker())
    with tracker:
        # read every input before training, so a bad file costs seconds, not a training run
        tasks = build_tasks(cfg.eval, cfg.data, list(cfg.index.values()), cfg.seed)
        device = resolve_device(cfg.device)
        cache = open_cache(cfg.eval)
        dataset = training_pairs(cfg.data, cfg.trainer.max_examples, cfg.seed, cfg.encode, cache, cfg.device)
        encoder = load_encoder(cfg.model.name_or_path, device, cfg.model.max_seq_length, cfg.model.trust_remote_code)
        views = build_views(cfg.model.views, encoder.n_layers, encoder.hidden_size)
        objective = build_objective(cfg.loss, encoder, views, cfg.model.objective, cfg.seed, cfg.trainer.on_nonfinite)
        sampler = batch_sampler(cfg.data, dataset, Embedder(encoder, [encoder.n_layers], cfg.encode, cache), cfg.seed)
        started = time.perf_counter()
        fit(cfg, encoder.model, objective, dataset, out_dir, device, tracker, resume=resume_run_id is not None,
            sampler=sampler)
        train_seconds = time.perf_counter() - started
        if not distributed.is_main():
            return {}  # the model is saved and scored once, by rank 0
        encoder.model.save(str(out_dir / "model"))
        encoder.saved_to(str(out_dir / "model"))
        if cfg.logger.log_model:
            tracker.log_artifact(out_dir / "model", "model")
        model = encoder_model(encoder, views, cfg)
        metrics = score_tasks(tasks, model)
        model.log_stats()
        metrics["train/seconds"] = train_seconds
        finish(tracker, out_dir, tasks, model.views, metrics, config, cfg.eval.suite)
        return metrics
