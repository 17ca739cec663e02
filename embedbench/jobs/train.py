"""The train job: data -> sentence-transformers' trainer with a view objective -> save -> score -> report."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from transformers import TrainerCallback, set_seed
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import rotate_checkpoints

from embedbench import distributed
from embedbench.atomic import disk_full
from embedbench.composition import as_dict
from embedbench.config import ModelKind, TrainRunConfig
from embedbench.data.pairs import training_sets
from embedbench.data.sampler import batch_sampler
from embedbench.embedding.cache import open_cache
from embedbench.embedding.dropout import drawn_fast
from embedbench.embedding.embedder import Embedder
from embedbench.embedding.encoder import load_encoder, model_options, native_bf16, resolve_device
from embedbench.embedding.heads import add_lora, merge_lora, set_attention_dropout
from embedbench.embedding.prompts import Prompts, keep_prompts, resolve_prompts, training_prompts
from embedbench.errors import EmbedbenchError, Preempted
from embedbench.losses import build_objective
from embedbench.losses.compat import ROW, CompatTerm
from embedbench.models import encoder_model, reference_encoder
from embedbench.phases import Phases
from embedbench.report import RUNS, finish
from embedbench.tasks import build_tasks, score_tasks
from embedbench.tracking import RUN_FILE, NullTracker, Tracker

log = logging.getLogger("embedbench")
CONFIG_FILE = ".embedbench_config"  # in a run folder: the fingerprint of its config, for trainer.resume=auto
LOGGED = {"loss": "train/loss", "learning_rate": "train/learning_rate", "epoch": "train/epoch",
          "grad_norm": "train/grad_norm"}


class LogToTracker(TrainerCallback):
    """Training loss, each view's loss term, learning rate and epoch per logging step into the job's MLflow
    run, and one readable line of numbers into the log."""

    def __init__(self, tracker: Tracker, objective):
        self.tracker = tracker
        self.objectives = list(objective.values()) if isinstance(objective, dict) else [objective]

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not (state.is_world_process_zero and logs):
            return
        values = {LOGGED[k]: float(v) for k, v in logs.items() if k in LOGGED}
        for objective in self.objectives:
            values.update(objective.pop_terms())
        if "train/loss" in values:
            self.tracker.log_metrics(values, step=state.global_step)
            log.info("step %d/%d  %s", state.global_step, state.max_steps, "  ".join(
                f"{name.removeprefix('train/')} {value:.4g}" for name, value in values.items()))


class StopOnSignal(TrainerCallback):
    """SIGTERM or SIGUSR1 (what Slurm sends before a preemption or the time limit): a checkpoint at the end of
    the current step, then training stops."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.received: str | None = None
        self._previous: dict = {}

    def on_train_begin(self, args, state, control, **kwargs):
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._receive)

    def _receive(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name

    def on_step_end(self, args, state, control, **kwargs):
        if self.received:
            control.should_save = control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Trainer(SentenceTransformerTrainer):
    """sentence-transformers' trainer whose checkpoints are written to a staging folder and renamed into place
    once complete: a ``checkpoint-N`` folder is whole whatever stopped the run while writing it (a full disk,
    a kill), so a resume never reads half a checkpoint."""

    def _save_checkpoint(self, model, trial):
        final = Path(self.args.output_dir)
        staging = final / ".staging"
        shutil.rmtree(staging, ignore_errors=True)
        self.args.output_dir = str(staging)
        try:
            super()._save_checkpoint(model, trial)
        except Exception as exc:
            full = disk_full(exc, final)
            shutil.rmtree(staging, ignore_errors=True)
            if full:
                raise EmbedbenchError(f"{final}/checkpoint-{self.state.global_step}: no space left on device; the "
                                      "last complete checkpoint stays, continue with trainer.resume=<run folder> "
                                      "once there is room") from None
            raise
        finally:
            self.args.output_dir = str(final)
        for folder in staging.glob("checkpoint-*"):
            shutil.rmtree(final / folder.name, ignore_errors=True)
            os.replace(folder, final / folder.name)
        staging.rmdir()
        rotate_checkpoints(str(final), self.args.save_total_limit, self.state.best_model_checkpoint)


class BarOnly(ProgressCallback):
    """The trainer's progress bar without its dump of the logs (LogToTracker prints them)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def fit(cfg: TrainRunConfig, model, objective, dataset, out_dir: Path, device: str, tracker: Tracker, bf16: bool,
        resume: bool = False, sampler="no_duplicates", prompts: Prompts = Prompts()) -> None:
    t = cfg.trainer
    # what auto chose on this machine; a tag, as a run resumed elsewhere may choose otherwise
    tracker.set_tags({"trainer.precision": "bf16" if bf16 else "fp32"})
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
        multi_dataset_batch_sampler="proportional",  # data.sources kept apart: each batch from one, by size
        prompts=trainer_prompts(prompts, cfg.data, dataset),
        logging_steps=t.log_every,
        save_strategy="steps" if t.save_every else "no",
        save_steps=t.save_every or None,
        save_total_limit=2,
        report_to="none",
        use_cpu=device == "cpu",
        activation_checkpointing=t.gradient_checkpointing,
        disable_tqdm=False,
    )
    stopper = StopOnSignal()
    trainer = Trainer(model=model, args=args, train_dataset=dataset, loss=objective,
                      callbacks=[LogToTracker(tracker, objective), stopper])
    trainer.remove_callback(ProgressCallback)  # keeps its bar, prints logs as quoted strings; ours prints numbers
    trainer.add_callback(BarOnly)
    # resuming restores weights (in place: the objective wraps this same model), optimizer, scheduler,
    # RNG states and the position in the data order from the last checkpoint
    with drawn_fast(model) if device == "cpu" and t.fast_dropout else nullcontext():
        trainer.train(resume_from_checkpoint=True if resume else None)
    if stopper.received:
        raise Preempted(f"training stopped by {stopper.received} at step {trainer.state.global_step}, its checkpoint "
                        f"written to {out_dir / 'checkpoints'}; continue with trainer.resume=auto (or ={out_dir})")


def training_bf16(setting, device: str, weights: torch.dtype = torch.float32) -> bool:
    """``trainer.bf16``; ``auto`` is bf16 autocast wherever bf16 is native (CUDA, CPUs with AVX512-BF16): on
    such a CPU the headline training reaches fp32's nDCG@10 in less time (docs/results/training.md).
    Never over fp16 ``weights``: autocast would hand their fp16 LayerNorms bf16 activations, which they refuse."""
    if weights == torch.float16:
        if setting is True:
            raise EmbedbenchError("trainer.bf16=true: the weights are fp16 (model.dtype), and bf16 autocast over "
                                  "them fails; use model.dtype=bf16 or fp32, or trainer.bf16=false")
        return False
    return native_bf16(device) if setting == "auto" else bool(setting)


def trainer_prompts(prompts: Prompts, data, dataset) -> dict:
    """Per text column; with sources kept apart, per source (each with its own instruction)."""
    if isinstance(dataset, dict):
        return {key: training_prompts(prompts, part.column_names, data.sources[key].instruction)
                for key, part in dataset.items()}
    instruction = next((source.instruction for source in data.sources.values()), None)  # mixed: one, checked
    return training_prompts(prompts, dataset.column_names, instruction)


def build_objectives(cfg: TrainRunConfig, encoder, views, dataset):
    """The objective; with sources kept apart, one per source, each with its own in-batch negatives."""
    # class indices number the whole table's labels: a cut training set may lack the last ones
    classes = max(dataset["label"]) + 1 if cfg.data.format == "classes" and not isinstance(dataset, dict) else None

    def build(in_batch_negatives: bool):
        return build_objective(cfg.loss, encoder, views, cfg.model.objective, cfg.seed, cfg.trainer.on_nonfinite,
                               in_batch_negatives, classes)

    sources = cfg.data.sources
    if isinstance(dataset, dict):
        return {key: build(source.in_batch_negatives) for key, source in sources.items()}
    return build(all(source.in_batch_negatives for source in sources.values()))  # mixed: all alike, checked


def with_compat_term(cfg: TrainRunConfig, objective, dataset, encoder, views, cache):
    """``loss.compat``: the reference embeds the training documents once; the objective gets the term, and the
    dataset each pair's row (as its label) to find them by."""
    key = "loss.compat.reference"
    if cfg.loss.name != "infonce" or isinstance(dataset, dict) or cfg.data.sources:
        raise EmbedbenchError(f"{key}: the compatibility term is built for loss=infonce on one training set")
    if ROW in dataset.column_names:
        raise EmbedbenchError(f"{key}: the training set already has a {ROW!r} column, which the term needs")
    reference = reference_encoder(cfg.loss.compat.reference, encoder, key)
    pooled = Embedder(reference, views.layers, cfg.encode, cache)(list(dataset["positive"]),
                                                                 f"compat reference: {len(dataset)} documents")
    objective.compat = CompatTerm(pooled, views, cfg.loss.compat.weight, cfg.loss.temperature)
    return dataset.add_column(ROW, list(range(len(dataset))))


def fingerprint(config: dict) -> str:
    """What makes two train runs the same run: the whole config but where to resume from."""
    settings = {**config, "trainer": {**config["trainer"], "resume": None}}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def unfinished_run(out_dir: Path, config: dict) -> Path | None:
    """``trainer.resume=auto``: the newest run folder of the same config that left a checkpoint and no results,
    looked for beside this run's folder (``outputs/runs``, or the sweep's folders)."""
    root = next((p for p in out_dir.parents if p.name in ("runs", "multirun")), out_dir.parent)
    wanted = fingerprint(config)
    candidates = [f.parent for f in root.glob(f"**/{CONFIG_FILE}")
                  if f.read_text().strip() == wanted and not (f.parent / "results.json").exists()
                  and list(f.parent.glob("checkpoints/checkpoint-*"))]
    return max(candidates, key=lambda folder: (folder / CONFIG_FILE).stat().st_mtime, default=None)


def resumable(folder: Path) -> tuple[Path, str]:
    """(run folder, MLflow run id) of an interrupted train run that left a checkpoint."""
    if not list(folder.glob("checkpoints/checkpoint-*")):
        raise EmbedbenchError(f"trainer.resume={folder}: no checkpoint in {folder / 'checkpoints'} "
                              "(a run saves one every trainer.save_every steps)")
    if not (folder / RUN_FILE).is_file():
        raise EmbedbenchError(f"trainer.resume={folder}: no {RUN_FILE}; not an embedbench train run folder")
    return folder, (folder / RUN_FILE).read_text().strip()


def run_train(cfg: TrainRunConfig, out_dir: Path, run_name: str, sweep_dir: str | None
              ) -> tuple[dict[str, float], str | None]:
    """(metrics, the headline metric's name); ranks other than 0 return nothing."""
    if cfg.model.kind == ModelKind.lexical:
        raise EmbedbenchError(f"model={cfg.model.name} has nothing to train; score it with `embedbench eval "
                              f"model={cfg.model.name}`")
    resume_run_id, config, phases = None, as_dict(cfg), Phases()
    resume = unfinished_run(out_dir, config) if cfg.trainer.resume == "auto" else cfg.trainer.resume
    if cfg.trainer.resume == "auto" and resume is None:
        log.info("trainer.resume=auto: no unfinished run of this config; starting one")
    if resume:
        out_dir, resume_run_id = resumable(Path(resume))
        log.info("continuing the run in %s from its last checkpoint", out_dir)
    set_seed(cfg.seed)
    tracker = (Tracker(cfg.logger, config, run_name, out_dir, sweep_dir, resume_run_id) if distributed.is_main()
               else NullTracker())
    with tracker:
        if distributed.is_main():
            (out_dir / CONFIG_FILE).write_text(fingerprint(config))
        with phases("loading"):  # every input is read before training: a bad file costs seconds, not a run
            tasks = build_tasks(cfg.eval, cfg.data, list(cfg.index.values()), cfg.seed)
            device = resolve_device(cfg.device)
            cache = open_cache(cfg.eval)
            dataset = training_sets(cfg.data, cfg.trainer.max_examples, cfg.seed, cfg.encode, cache, cfg.device)
            encoder = load_encoder(cfg.model.name_or_path, device, **model_options(cfg.model))
            weights = encoder.weights_dtype
            bf16 = training_bf16(cfg.trainer.bf16, device, weights)
            if weights != torch.float32 and not cfg.model.lora.r:
                log.warning("model.dtype: full fine-tuning updates the %s weights in place, and most of AdamW's "
                            "steps at trainer.lr=%g fall below their resolution; train fp32 weights (trainer.bf16 "
                            "still computes in bf16) or adapters (model.lora.r)",
                            str(weights).removeprefix("torch."), cfg.trainer.lr)
            views = encoder.views(cfg.model.views)
            if cfg.model.views.pairs and not views.trains_full:  # a diagonal written for another encoder's shape
                log.warning("model.views.pairs: no pair is this encoder's full view (layer %d, dim %d), which is then "
                            "scored but not trained; a Starbucks diagonal ends there (for 12 layers x 768: [[2,32],"
                            "[4,64],[6,128],[8,256],[10,512],[12,768]])", views.n_layers, views.hidden_size)
            if cfg.model.lora.r:
                add_lora(encoder.model, cfg.model.lora)
            dropout = cfg.trainer.attention_dropout
            if dropout is not None and not set_attention_dropout(encoder.model[0], dropout):
                raise EmbedbenchError(f"trainer.attention_dropout={dropout}: {cfg.model.name_or_path} has no "
                                      "attention module holding a dropout to set")
            prompts = resolve_prompts(encoder.model, cfg.model.prompts, cfg.model.prompt_template)
            tracker.log_params({**prompts.params(), "similarity": views.similarity})
            objective = build_objectives(cfg, encoder, views, dataset)
            if cfg.loss.compat.reference:
                dataset = with_compat_term(cfg, objective, dataset, encoder, views, cache)
            sampler = batch_sampler(cfg.data, dataset, Embedder(encoder, [encoder.n_layers], cfg.encode, cache),
                                    cfg.seed)
        baseline = None
        if cfg.eval.baseline and distributed.is_main():
            with phases("baseline"):  # the starting model's scores; a model scored before comes from the cache
                baseline = score_tasks(tasks, encoder_model(encoder, views, cfg))
        with phases("training"):
            started = time.perf_counter()
            fit(cfg, encoder.model, objective, dataset, out_dir, device, tracker, bf16,
                resume=resume_run_id is not None, sampler=sampler, prompts=prompts)
            train_seconds = time.perf_counter() - started
        if not distributed.is_main():
            return {}, None  # the model is saved and scored once, by rank 0
        with phases("saving"):
            # the saved model carries the prompts it was trained with: scored anywhere, it gets them again
            keep_prompts(encoder.model, prompts)
            if cfg.model.lora.r:
                merge_lora(encoder.model)
            try:
                encoder.model.save(str(out_dir / "model"))
            except Exception as exc:
                if disk_full(exc, out_dir):
                    raise EmbedbenchError(f"{out_dir / 'model'}: no space left on device saving the trained "
                                          "model") from None
                raise
            encoder.saved_to(str(out_dir / "model"))
            if cfg.logger.log_model:
                tracker.log_model(out_dir / "model")
        model = encoder_model(encoder, views, cfg, phases)
        metrics = score_tasks(tasks, model, phases, out_dir / RUNS if cfg.eval.save_runs else None)
        metrics["train/seconds"] = train_seconds
        model.log_stats()
        headline = finish("train", tracker, out_dir, phases, tasks, model.views, metrics, config, cfg.eval.suite,
                          baseline)
    if not cfg.trainer.keep_checkpoints:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)  # the run succeeded: the model is saved
    return metrics, headline
