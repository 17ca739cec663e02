"""Reproduction matrices: conditions (eval overrides) with the scores they are expected to give, each run as
an ``embedbench eval`` of its own and reported as expected | got | delta | OK/FAIL.

A matrix is YAML: a ``source`` for its expected values and ``conditions``, each a name mapped to
``overrides`` (eval's command line), ``expected`` (metric -> value), and optionally its own ``tolerance``
(the matrix's by default) and ``source``. The shipped matrices live in ``embedbench/matrices/``.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from embedbench.errors import EmbedbenchError
from embedbench.report import aligned

SHIPPED = Path(__file__).parent / "matrices"


@dataclass
class Condition:
    overrides: list[str] = field(default_factory=list)
    expected: dict[str, float] = field(default_factory=dict)
    tolerance: float | None = None  # null: the matrix's
    source: str | None = None  # null: the matrix's


@dataclass
class Matrix:
    source: str = ""
    tolerance: float = 0.002
    conditions: dict[str, Condition] = field(default_factory=dict)


@dataclass
class Outcome:
    condition: str
    metric: str
    expected: float
    got: float | None  # None: the run failed
    tolerance: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.got is not None and abs(self.got - self.expected) <= self.tolerance


def find_matrix(name_or_path: str) -> Path:
    """A shipped matrix by name (``local``), or a YAML file."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = SHIPPED / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in SHIPPED.glob("*.yaml")))
    raise EmbedbenchError(f"reproduce {name_or_path}: neither a file nor a shipped matrix ({names})")


def load_matrix(path: Path) -> Matrix:
    try:
        matrix = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Matrix), OmegaConf.load(path)))
    except OmegaConfBaseException as exc:
        key = f" {exc.full_key}:" if getattr(exc, "full_key", None) else ""
        raise EmbedbenchError(f"{path}:{key} {str(exc).splitlines()[0]}") from None
    for name, condition in matrix.conditions.items():
        if not condition.expected:
            raise EmbedbenchError(f"{path}: condition {name} expects no score")
    if not matrix.conditions:
        raise EmbedbenchError(f"{path}: no conditions")
    return matrix


def run_condition(name: str, condition: Condition, matrix: Matrix, workdir: Path,
                  extra: list[str]) -> list[Outcome]:
    """One eval run of the condition in its own process (a fresh Hydra app), logged to the MLflow experiment
    ``reproduce`` unless ``extra`` says otherwise; its scores against the expected."""
    tolerance = condition.tolerance if condition.tolerance is not None else matrix.tolerance
    out_dir = workdir / name
    command = [sys.executable, "-m", "embedbench", "eval", "logger.experiment=reproduce", *condition.overrides,
               *extra, f"hydra.run.dir={out_dir}"]
    print(f"[{name}] embedbench eval {' '.join(condition.overrides)}", file=sys.stderr, flush=True)
    returncode, tail = _run_showing_progress(command)
    results = out_dir / "results.json"
    if returncode != 0 or not results.is_file():
        lines = [line for line in tail.splitlines() if line.strip()]
        error = lines[-1].removeprefix("embedbench: error: ") if lines else f"exit {returncode}"
        return [Outcome(name, metric, value, None, tolerance, error) for metric, value in condition.expected.items()]
    metrics = json.loads(results.read_text())["metrics"]
    return [Outcome(name, metric, value, metrics.get(metric), tolerance,
                    None if metric in metrics else f"the run logged no {metric}")
            for metric, value in condition.expected.items()]


def _run_showing_progress(command: list[str]) -> tuple[int, str]:
    """Run ``command``, its output passed on to stderr as it comes (progress bars included); its exit code
    and the last of that output, where a failed run's error line is."""
    tail = ""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        while chunk := proc.stdout.read1(4096):
            text = chunk.decode(errors="replace")
            sys.stderr.write(text)
            tail = (tail + text)[-4000:]
    sys.stderr.flush()
    return proc.returncode, tail


def table(outcomes: list[Outcome]) -> str:
    rows = [("condition", "metric", "expected", "got", "delta", "tolerance", "")]
    for o in outcomes:
        got = f"{o.got:.5f}" if o.got is not None else "-"
        delta = f"{o.got - o.expected:+.5f}" if o.got is not None else "-"
        rows.append((o.condition, o.metric, f"{o.expected:.5f}", got, delta, f"{o.tolerance:g}",
                     "OK" if o.ok else f"FAIL{': ' + o.error if o.error else ''}"))
    return aligned(rows, left=len(rows[0]))


def reproduce(name_or_path: str, only: list[str] | None, extra: list[str]) -> int:
    """Run the matrix's conditions (``only``: those named); print the table; 0 when every score is OK."""
    path = find_matrix(name_or_path)
    matrix = load_matrix(path)
    unknown = [name for name in only or [] if name not in matrix.conditions]
    if unknown:
        raise EmbedbenchError(f"--only {unknown[0]}: no such condition in {path} "
                              f"({', '.join(matrix.conditions)})")
    chosen = {name: c for name, c in matrix.conditions.items() if not only or name in only}
    with tempfile.TemporaryDirectory(prefix="reproduce-") as scratch:
        outcomes = [o for name, condition in chosen.items()
                    for o in run_condition(name, condition, matrix, Path(scratch), extra)]
    print(f"{path.name}: {matrix.source}")
    print(table(outcomes))
    for name, condition in chosen.items():
        if condition.source:
            print(f"  {name}: {condition.source}")
    failed = sorted({o.condition for o in outcomes if not o.ok})
    print(f"{len(chosen) - len(failed)} of {len(chosen)} conditions reproduced"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0
