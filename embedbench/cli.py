"""`embedbench train|eval|compare|ui`: the two Hydra jobs and two views of the MLflow store."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from embedbench import distributed
from embedbench.allocator import keep_freed_memory
from embedbench.checks import check_choices, check_numbers
from embedbench.errors import EmbedbenchError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

USAGE = """usage: embedbench COMMAND [overrides...]

commands:
  train [overrides]            fit model= with loss= on data=, then score every view (Hydra app: -m, --cfg job, --help)
  eval [overrides]             score a model without training (model.name_or_path=NAME|FOLDER|RUN_FOLDER)
  compare [EXPERIMENT] [logger.tracking_uri=URI]
                               the experiment's runs: config values that differ and main metrics, best first
  ui [logger.tracking_uri=URI] [--port N] [--host H]
                               MLflow UI over the project's store (127.0.0.1 unless --host says otherwise)

examples:
  embedbench eval
  embedbench train model=mrl loss=infonce data=scifact
  embedbench train -m trainer=debug loss.temperature=0.02,0.05
  embedbench compare
"""


def fail(message: str) -> None:
    # on a line of its own, even when a progress bar was mid-line
    print(f"\nembedbench: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def job(cfg) -> None:
    """Body of both Hydra apps: one job, one MLflow run, one results.json."""
    for noisy in ("faiss.loader", "matplotlib", "sentence_transformers", "httpx", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    hc = HydraConfig.get()
    overrides = " ".join(hc.overrides.task)
    run_name = f"{cfg.task} {overrides}".strip()[:250]
    sweep_dir = str(Path(hc.sweep.dir).resolve()) if hc.mode == RunMode.MULTIRUN else None
    try:
        check_numbers(cfg)
        check_choices(cfg)
        from embedbench.evaluate import run_eval
        from embedbench.train import run_train

        runner = run_train if cfg.task == "train" else run_eval
        runner(cfg, Path(hc.runtime.output_dir), run_name, sweep_dir)
    except EmbedbenchError as exc:
        fail(str(exc))


def compose_config(name: str, overrides: list[str], with_hydra: bool = False):
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(name, overrides=overrides, return_hydra_config=with_hydra)
    except HydraException as exc:
        fail(one_line(str(exc).split("Config search path")[0]))


def one_line(text: str) -> str:
    """Hydra's multi-line messages (e.g. the list of valid choices) as one line."""
    out = ""
    for part in filter(None, (line.strip() for line in text.splitlines())):
        out += (" " if out.endswith(":") else "; " if out else "") + part
    return out


def compare(args: list[str]) -> None:
    import pandas as pd

    from embedbench.compare import runs_table
    from embedbench.tracking import tracking_uri

    cfg = compose_config("eval", [a for a in args if "=" in a])
    positional = [a for a in args if "=" not in a]
    experiment = positional[0] if positional else cfg.logger.experiment
    table = runs_table(tracking_uri(cfg.logger), experiment)
    if table.empty:
        print(f"no runs in experiment {experiment!r}")
        return
    with pd.option_context("display.max_columns", None, "display.width", 250, "display.max_colwidth", 40):
        print(table.to_string())


def ui(args: list[str]) -> None:
    import argparse

    from embedbench.tracking import tracking_uri

    parser = argparse.ArgumentParser(prog="embedbench ui")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="5000")
    flags, overrides = parser.parse_known_args(args)
    cfg = compose_config("eval", overrides)
    uri = tracking_uri(cfg.logger)
    print(f"MLflow UI on http://{flags.host}:{flags.port} over {uri}", file=sys.stderr)
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
                               "--host", flags.host, "--port", str(flags.port)])


def distributed_overrides(command: str, args: list[str]) -> list[str]:
    """Under torchrun: one train job whose ranks share rank 0's run folder."""
    if command != "train":
        fail(f"embedbench {command} runs in one process; torchrun is for `embedbench train`")
    if {"-m", "--multirun"} & set(args):
        fail("torchrun with -m: launch each job of the sweep with its own torchrun")
    distributed.init()
    overrides = [a for a in args if not a.startswith("-")]
    run_dir = distributed.from_rank0(lambda: compose_config(command, overrides, with_hydra=True).hydra.run.dir)
    return [*args, f"hydra.run.dir={run_dir}"]


def main() -> None:
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    try:
        if command in ("train", "eval"):
            keep_freed_memory()
            if not CONF_DIR.is_dir():
                fail(f"{CONF_DIR}: config folder missing (install with `pip install -e .` from a checkout)")
            if not {"-m", "--multirun", "--help", "-h", "--hydra-help"} & set(rest):
                # Hydra would report a bad override over several lines, after its banner: check it here first
                compose_config(command, [a for a in rest if not a.startswith("-") and ("=" in a or a[:1] == "~")])
            if distributed.world_size() > 1:
                rest = distributed_overrides(command, rest)
            sys.argv = [f"embedbench {command}", *rest]
            hydra.main(config_path=str(CONF_DIR), config_name=command, version_base="1.3")(job)()
        elif command == "compare":
            compare(rest)
        elif command == "ui":
            ui(rest)
        else:
            fail(f"unknown command {command!r}; choose one of train, eval, compare, ui")
    except EmbedbenchError as exc:
        fail(str(exc))


if __name__ == "__main__":
    main()
