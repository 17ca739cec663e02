"""The train job: data -> sentence-transformers trainer with a view objective -> score -> log."""
from __future__ import annotations

import time
from pathlib import Path

from transformers import TrainerCallback, set_seed

from embedbench.data.pairs import training_pairs
from embedbench.data.sampler import batch_sampler
from embedbench.encoder import load_encoder, resolve_device
from embedbench.errors import EmbedbenchError
from embedbench.evaluate import finish, open_cache, score
from embedbench.losses import build_objective
from embedbench.tasks import load_tasks
from embedbench import distributed
from embedbench.tracking import RUN_FILE, NullTracker, Tracker
from embedbench.views import build_views, with_grid


class LogToTracker(TrainerCallback):
    """Training loss, learning rate and epoch per logging step into the job's MLflow run."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            names = {"loss": "train/loss", "learning_rate": "train/learning_rate", "epoch": "train/epoch",
                     "grad_norm": "train/grad_norm"}
            values = {names[k]: v for k, v in logs.items() if k in names}
            if values:
                self.tracker.log_metrics(values, step=state.global_step)


def fit(cfg, model, objective, dataset, out_dir: Path, device: str, tracker: Tracker, resume: bool = False,
        sampler="no_duplicates") -> None:
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    t = cfg.trainer
    bf16 = device.startswith("cuda") if t.bf16 == "auto" else bool(t.bf16)
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


def run_train(cfg, out_dir: Path, run_name: str, sweep_dir: str | None) -> dict[str, float]:
    if cfg.model.get("kind") == "lexical":
        raise EmbedbenchError(f"model={cfg.model.name} has nothing to train; score it with `embedbench eval "
                              f"model={cfg.model.name}`")
    resume_run_id = None
    if cfg.trainer.get("resume"):
        out_dir, resume_run_id = resumable(Path(cfg.trainer.resume))
    set_seed(cfg.seed)
    tracker = (Tracker(cfg, run_name, sweep_dir, out_dir / RUN_FILE, resume_run_id) if distributed.is_main()
               else NullTracker())
    with tracker:
        # read every input before training, so a bad file costs seconds, not a training run
        tasks = load_tasks(cfg)
        dataset = training_pairs(cfg)
        device = resolve_device(cfg.device)
        encoder = load_encoder(cfg.model.name_or_path, device, cfg.model.max_seq_length, cfg.model.trust_remote_code)
        model = encoder.model
        views = build_views(cfg.model.views, encoder.n_layers, encoder.hidden_size)
        objective = build_objective(cfg.loss, encoder, views, cfg.model.get("objective"), cfg.seed,
                                    cfg.trainer.on_nonfinite)
        started = time.perf_counter()
        fit(cfg, model, objective, dataset, out_dir, device, tracker, resume=resume_run_id is not None,
            sampler=batch_sampler(cfg, dataset, encoder))
        train_seconds = time.perf_counter() - started
        if not distributed.is_main():
            return {}  # the model is saved and scored once, by rank 0
        model.save(str(out_dir / "model"))
        encoder.saved_to(str(out_dir / "model"))
        if cfg.logger.log_model:
            tracker.log_artifact(out_dir / "model", "model")
        views = with_grid(views, cfg.eval.get("grid"))
        metrics = score(tasks, encoder, views, cfg.encode, open_cache(cfg.eval))
        metrics["train/seconds"] = train_seconds
        finish(cfg, tracker, out_dir, tasks, views, metrics)
        return metrics
