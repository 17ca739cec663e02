"""`embedbench train|eval|compare|ui`: parse, compose, check, hand over to a job.

Only the standard library is imported at start: ``--help`` answers at once, and a config error is
reported after composing the config (Hydra and the schemas), before torch or any job is imported.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from embedbench import distributed
from embedbench.errors import EmbedbenchError, Preempted

CONF_DIR = Path(__file__).resolve().parent / "conf"

USAGE = """usage: embedbench COMMAND [overrides...]

commands:
  train [overrides]            fit model= with loss= on data=, then score every view (Hydra app: -m, --cfg job, --help)
  eval [overrides]             score a model without training (model.name_or_path=NAME|FOLDER|RUN_FOLDER)
  compare [EXPERIMENT] [logger.tracking_uri=URI]
                               the experiment's runs: config values that differ and main metrics, best first
  ui [logger.tracking_uri=URI] [--port N] [--host H]
                               MLflow UI over the project's store (127.0.0.1 unless --host says otherwise)
  log RUN_FOLDER [logger.tracking_uri=URI]
                               send what a run kept while its tracking server was away
  reproduce [MATRIX] [--only CONDITION ...]
                               run a reproduction matrix: expected | got | delta | OK/FAIL per score
  reduce [data=...] [--k 10 20 50 100]
                               a smaller BEIR folder (judged + top-k of reference retrievers), and how
                               faithfully it ranks systems

train and eval take --config-dir DIR ($EMBEDBENCH_CONFIG_DIR): DIR's model/, data/, eval/, experiment/ YAMLs
beside the shipped ones (docs/custom-tasks.md).

examples:
  embedbench eval
  embedbench train model=mrl loss=infonce data=scifact
  embedbench train -m trainer=debug loss.temperature=0.02,0.05
  embedbench compare
"""
MULTIRUN = {"-m", "--multirun"}
CONFIG_DIR_VARIABLE = "EMBEDBENCH_CONFIG_DIR"
HYDRA_INFO = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc"}


def fail(message: str, code: int = 2) -> None:
    # on a line of its own, even when a progress bar was mid-line
    print(f"\nembedbench: {'stopped' if code == Preempted.exit_code else 'error'}: {message}", file=sys.stderr)
    raise SystemExit(code)


def job(cfg) -> float | None:
    """Body of both Hydra apps: one job, one MLflow run, one results.json. Returns the sweep's objective
    (``sweep.objective``, default the headline metric), which optimising sweepers (Optuna) maximise."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from embedbench.atomic import disk_full
    from embedbench.composition import load
    from embedbench.sweeps import varying_keys

    for noisy in ("faiss.loader", "matplotlib", "sentence_transformers", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    hc = HydraConfig.get()
    sweep_dir = str(Path(hc.sweep.dir).resolve()) if hc.mode == RunMode.MULTIRUN else None
    run_name = name_run(str(cfg.job), list(hc.overrides.task), varying_keys(sweep_dir))
    try:
        typed = load(cfg)
        if typed.job == "train" and typed.trainer.init_from == "previous":
            typed.model.name_or_path = previous_job_model(hc)
        if typed.job == "train":
            from embedbench.jobs.train import run_train as runner
        else:
            from embedbench.jobs.eval import run_eval as runner
        metrics, headline = runner(typed, Path(hc.runtime.output_dir), run_name, sweep_dir)
        objective = typed.sweep.objective or headline
        if sweep_dir is None or headline is None:  # a single run, or a rank other than 0 (it scored nothing)
            return None
        if objective not in metrics:
            raise EmbedbenchError(f"sweep.objective={objective}: not a metric of this run (e.g. {headline})")
        return metrics[objective]
    except Preempted as exc:
        fail(str(exc), exc.exit_code)
    except EmbedbenchError as exc:
        fail(str(exc))
    except OSError as exc:
        if not disk_full(exc):
            raise
        fail(f"{exc.filename or 'a file of the run'}: no space left on device")


def name_run(job_name: str, overrides: list[str], varying: list[str]) -> str:
    """What differs between the runs of a sweep first (the UI cuts long names), then the job and the rest."""
    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    lead = [o for o in overrides if key(o) in varying]
    rest = [o for o in overrides if key(o) not in varying]
    return " ".join([*lead, *(["|"] if lead else []), job_name, *rest])[:250]


def compose_config(name: str, overrides: list[str], config_dir: str | None = None, with_hydra: bool = False):
    """The config Hydra would compose for these overrides (plus ``config_dir``'s YAMLs), or one error line."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from embedbench.composition import describe

    if config_dir:
        overrides = [*overrides, f"hydra.searchpath=[file://{Path(config_dir).resolve()}]"]
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(name, overrides=overrides, return_hydra_config=with_hydra)
    except (HydraException, OmegaConfBaseException) as exc:
        fail(describe(exc))


def previous_job_model(hc) -> str:
    """``trainer.init_from=previous``: the model folder of the sweep's job before this one (the jobs' folders
    are named by their number, ``hydra.sweep.subdir``)."""
    from hydra.types import RunMode

    if hc.mode != RunMode.MULTIRUN or hc.job.num == 0:
        raise EmbedbenchError("trainer.init_from=previous: a later stage of a sweep starts from the model of the "
                              "job before it, and this job has none before it")
    folder = Path(hc.runtime.output_dir).parent / str(hc.job.num - 1) / "model"
    if not (folder / "modules.json").is_file():
        raise EmbedbenchError(f"trainer.init_from=previous: {folder} holds no model; the job before did not finish, "
                              "or ran at the same time (stages need jobs one after another: the basic launcher)")
    return str(folder.resolve())


def job_overrides(args: list[str]) -> list[list[str]]:
    """The overrides of every job the command line launches: one list, or one per combination of a sweep."""
    overrides = [a for a in args if a and not a.startswith("-") and ("=" in a or a[0] in "~+")]
    if not MULTIRUN & set(args):
        return [overrides]
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    try:
        return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except Exception:  # a sweeper's own syntax (interval(), tag()): check what every job shares
        return [[o.input_line for o in parsed if not o.is_sweep_override()]]


def config_sweep(command: str, args: list[str], config_dir: str | None) -> list[str]:
    """A multirun's sweep that the config itself declares (``hydra.sweeper.params``, as a recipe's stages
    are), as overrides; the command line's own come first and win."""
    if not MULTIRUN & set(args):
        return []
    # the config groups chosen (experiment=...) decide it; settings may name keys only a swept group adds
    groups = [a for a in job_overrides(args)[0] if "." not in a.split("=", 1)[0]]
    params = compose_config(command, groups, config_dir, with_hydra=True).hydra.sweeper.get("params") or {}
    given = {a.split("=", 1)[0].lstrip("+~") for a in args if "=" in a}
    return [f"{key}={value}" for key, value in params.items() if key.lstrip("+~") not in given]


def check_before_launch(command: str, args: list[str], config_dir: str | None) -> None:
    """Every job's config composes and loads, and its model folder exists, before anything starts:
    no run folder, MLflow run or sweep is left behind by a typo."""
    from embedbench.composition import load
    from embedbench.config import ModelKind
    from embedbench.embedding.sources import resolve_model_path
    from embedbench.tracking_server import check_server

    servers = set()
    for overrides in job_overrides([*args, *config_sweep(command, args, config_dir)]):
        typed = load(compose_config(command, overrides, config_dir))
        later_stage = getattr(getattr(typed, "trainer", None), "init_from", None)  # its model: an earlier job's
        if typed.model.kind == ModelKind.encoder and not later_stage:
            resolve_model_path(typed.model.name_or_path)
        if typed.eval.compat.reference:
            resolve_model_path(typed.eval.compat.reference, "eval.compat.reference")
        if getattr(getattr(typed, "loss", None), "compat", None) and typed.loss.compat.reference:
            resolve_model_path(typed.loss.compat.reference, "loss.compat.reference")
        servers.add((typed.logger.tracking_uri, typed.logger.experiment))
    for uri, experiment in servers:  # reachable, and taking these credentials
        check_server(uri, experiment)


def config_dir_of(args: list[str], environment: bool = True) -> str | None:
    """The user's config folder: --config-dir, else (``environment``) $EMBEDBENCH_CONFIG_DIR."""
    for i, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--config-dir="):
            return arg.split("=", 1)[1]
    return os.environ.get(CONFIG_DIR_VARIABLE) or None if environment else None


def distributed_overrides(command: str, args: list[str], config_dir: str | None) -> list[str]:
    """Under torchrun: one train or eval job whose ranks share rank 0's run folder."""
    if MULTIRUN & set(args):
        fail("torchrun with -m: launch each job of the sweep with its own torchrun")
    distributed.init()
    overrides = job_overrides(args)[0]
    run_dir = distributed.from_rank0(
        lambda: compose_config(command, overrides, config_dir, with_hydra=True).hydra.run.dir)
    return [*args, f"hydra.run.dir={run_dir}"]


def run_job(command: str, args: list[str]) -> None:
    import hydra

    from embedbench.allocator import keep_freed_memory
    from embedbench.config import register

    keep_freed_memory()
    register()  # the schemas the YAMLs' defaults lists name
    flagged, config_dir = config_dir_of(args, environment=False), config_dir_of(args)
    if config_dir and not Path(config_dir).is_dir():
        fail(f"--config-dir {config_dir}: no such folder" if flagged else
             f"${CONFIG_DIR_VARIABLE}={config_dir}: no such folder")
    if config_dir and not flagged:
        args = ["--config-dir", config_dir, *args]  # from the environment: Hydra takes it as a flag only
    if not HYDRA_INFO & set(args):
        check_before_launch(command, args, config_dir)
    if distributed.world_size() > 1:
        args = distributed_overrides(command, args, config_dir)
    if "hydra/sweeper=optuna" in args and not any(a.startswith("hydra.sweeper.direction=") for a in args):
        args = [*args, "hydra.sweeper.direction=maximize"]  # every task metric is better higher
    sys.argv = [f"embedbench {command}", *args]
    try:
        hydra.main(config_path=str(CONF_DIR), config_name=command, version_base="1.3")(job)()
    finally:
        distributed.leave()


def compare(args: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="embedbench compare", description="An experiment's finished runs, ranked only against comparable "
        "runs (same tasks; full sets and slices apart), best first: the parameters that differ, then metrics.")
    parser.add_argument("experiment", nargs="?", help="MLflow experiment (default: logger.experiment)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. logger.tracking_uri=URI")
    parser.add_argument("--metrics", nargs="+", metavar="PATTERN",
                        help="metric columns by shell-style pattern, e.g. 'scifact/ndcg_at_10*' (default: each "
                             "task's main metric at the full view)")
    parser.add_argument("--format", default="table", choices=("table", "markdown", "csv"))
    parser.add_argument("--all", action="store_true", help="also FAILED and unfinished runs, with their status")
    flags = parser.parse_args(args)
    given = [a for a in [flags.experiment, *flags.overrides] if a]
    cfg = compose_config("eval", [a for a in given if "=" in a], config_dir_of([]))
    positional = [a for a in given if "=" not in a]

    from embedbench.compare import compare as compare_runs
    from embedbench.tracking import tracking_uri

    experiment = positional[0] if positional else cfg.logger.experiment
    print(compare_runs(tracking_uri(cfg.logger), experiment, flags.metrics, flags.format, flags.all))


def ui(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="embedbench ui", description="MLflow UI over the project's store.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="5000")
    flags, overrides = parser.parse_known_args(args)
    cfg = compose_config("eval", overrides, config_dir_of([]))

    from mlflow.tracking import MlflowClient

    from embedbench.tracking import experiment_id, tracking_uri, ui_url

    uri = tracking_uri(cfg.logger)
    page = ui_url(f"http://{flags.host}:{flags.port}", experiment_id(MlflowClient(uri), cfg.logger))
    print(f"MLflow UI over {uri}: the runs of experiment {cfg.logger.experiment!r} at {page}", file=sys.stderr)
    # one worker: the UI serves one reader, and each worker holds a copy of the server
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", flags.host,
                               "--port", str(flags.port), "--workers", "1"])


def send(args: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="embedbench log", description="Send to its MLflow run what a run kept in "
                                     "its folder while the tracking server was away (mlflow_pending.jsonl).")
    parser.add_argument("folder", type=Path, help="the run folder")
    parser.add_argument("overrides", nargs="*", help="logger settings, e.g. logger.tracking_uri=URI (default: the "
                                                     "run's own)")
    flags = parser.parse_args(args)
    from omegaconf import OmegaConf

    from embedbench.config import LoggerConfig
    from embedbench.tracking import send_pending

    composed = flags.folder / ".hydra" / "config.yaml"  # the run's own settings, as Hydra saved them
    logger = OmegaConf.merge(OmegaConf.structured(LoggerConfig),
                             OmegaConf.load(composed).get("logger", {}) if composed.is_file() else {},
                             OmegaConf.from_dotlist([o.removeprefix("logger.") for o in flags.overrides]))
    print(send_pending(flags.folder, OmegaConf.to_object(logger)))


def reproduce(args: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="embedbench reproduce", description="Run each condition of a reproduction matrix as an eval and "
        "print expected | got | delta | OK/FAIL; exit 1 on any FAIL.")
    parser.add_argument("matrix", nargs="?", default="local",
                        help="a shipped matrix (local: the local sets; beir: BEIR collections, online) or a YAML file")
    parser.add_argument("overrides", nargs="*", help="added to every condition's eval, e.g. encode.batch_size=64")
    parser.add_argument("--only", nargs="+", metavar="CONDITION", help="run only these conditions")
    flags = parser.parse_args(args)
    given = [a for a in [flags.matrix, *flags.overrides] if a]
    matrix = next((a for a in given if "=" not in a), "local")

    from embedbench.reproduce import reproduce as run_matrix

    raise SystemExit(run_matrix(matrix, flags.only, [a for a in given if "=" in a]))


def reduce(args: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="embedbench reduce", description="MMTEB-style reduced corpora of the BEIR collection data= names: "
        "judged documents plus the top k of BM25 and model= (its full view), for each k; and how faithfully each "
        "ranks the systems (every layer x dim view of model=, BM25, each --run's views) against the full corpus.")
    parser.add_argument("overrides", nargs="*", help="data= (the collection), model= (a reference), encode.*")
    parser.add_argument("--k", nargs="+", type=int, default=[10, 20, 50, 100])
    parser.add_argument("--run", nargs="+", default=[], metavar="RUN_FOLDER", help="trained runs to rank as well")
    parser.add_argument("--out", type=Path, default=Path("outputs/reduced"))
    flags = parser.parse_args(args)
    if any(k < 1 for k in flags.k):
        fail(f"--k {' '.join(map(str, flags.k))}: every k must be at least 1")
    from embedbench.composition import load

    base = load(compose_config("eval", [*flags.overrides, "eval.grid=full"], config_dir_of([])))
    configs = {base.model.name: base,
               "bm25": load(compose_config("eval", [*flags.overrides, "model=bm25"], config_dir_of([])))}
    for run in flags.run:
        if not Path(run).is_dir():
            fail(f"--run {run}: no such folder")
        configs[Path(run).name] = load(compose_config(
            "eval", [*flags.overrides, f"model.name_or_path={Path(run).resolve()}", "eval.grid=full"],
            config_dir_of([])))

    from embedbench.jobs.reduce import run_reduce

    print(run_reduce(configs, [base.model.name, "bm25"], sorted(set(flags.k)), flags.out))


def main() -> None:
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    try:
        if command in ("train", "eval"):
            run_job(command, rest)
        elif command == "compare":
            compare(rest)
        elif command == "ui":
            ui(rest)
        elif command == "log":
            send(rest)
        elif command == "reproduce":
            reproduce(rest)
        elif command == "reduce":
            reduce(rest)
        else:
            fail(f"unknown command {command!r}; choose one of train, eval, compare, ui, log, reproduce, reduce")
    except EmbedbenchError as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
