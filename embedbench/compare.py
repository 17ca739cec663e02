"""`embedbench compare`: an experiment's runs in tables a researcher can trust.

Runs are ranked only against comparable runs: those scored on the same tasks, and either all on full sets or
all on slices (``eval.max_*``), each group in a table of its own, full sets first. FAILED and unfinished runs
are left out unless asked for. Columns: the parameters that differ, then the chosen metrics (by default each
task's main metric at the full view; ``--metrics`` takes shell-style patterns).
"""
from __future__ import annotations

import fnmatch
import shutil

import pandas as pd

from embedbench.errors import EmbedbenchError
from embedbench.retrieval.base import COSTS
from embedbench.tracking import ROLE_TAG

MAIN_TAG, SCOPE_TAG, TASKS_TAG = "tags.embedbench.main", "tags.embedbench.scope", "tags.embedbench.tasks"
FORMATS = ("table", "markdown", "csv")


def load_runs(uri: str, experiment: str, include_unfinished: bool = False, parent: str | None = None,
              max_runs: int = 1000) -> pd.DataFrame:
    """The experiment's runs (one sweep's, given its ``parent`` run), newest first; sweep parents left out."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        raise EmbedbenchError(f"experiment {experiment!r}: not in the store {uri}")
    query = f"tags.mlflow.parentRunId = '{parent}'" if parent else ""
    runs = mlflow.search_runs(experiment_names=[experiment], filter_string=query, max_results=max_runs,
                              order_by=["start_time DESC"])
    if runs.empty:
        return runs
    if f"tags.{ROLE_TAG}" in runs:
        runs = runs[runs[f"tags.{ROLE_TAG}"] != "sweep"]
    if not include_unfinished:
        runs = runs[runs["status"] == "FINISHED"]
    return runs.reset_index(drop=True)


def groups(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(heading, runs) per set of comparable runs: same tasks, same scope; full sets before slices."""
    tasks = runs[TASKS_TAG].fillna("?") if TASKS_TAG in runs else pd.Series("?", index=runs.index)
    scope = runs[SCOPE_TAG].fillna("unknown") if SCOPE_TAG in runs else pd.Series("unknown", index=runs.index)
    order = {"full": 0, "slice": 1, "unknown": 2}
    found = []
    for (task_set, kind), group in runs.groupby([tasks, scope], sort=False):
        what = {"full": "full sets", "slice": "SLICES: not comparable with full-set scores",
                "unknown": "scope unknown"}[kind]
        found.append((order[kind], f"{task_set.replace(',', ', ')} ({what}; {len(group)} runs)", group))
    return [(heading, group) for _, heading, group in sorted(found, key=lambda item: item[0])]


def metric_columns(runs: pd.DataFrame, patterns: list[str] | None) -> list[str]:
    names = [c[len("metrics."):] for c in runs.columns if c.startswith("metrics.") and runs[c].notna().any()]
    if patterns:
        return sorted(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns))
    main = [m for value in runs.get(MAIN_TAG, pd.Series(dtype=str)).dropna() for m in value.split(",")]
    main = list(dict.fromkeys(m for m in main if m in names))
    return main or [n for n in names if n.count("/") == 1 and not n.startswith("train/")
                    and n.split("/")[1] not in COSTS]


def table(runs: pd.DataFrame, patterns: list[str] | None = None, with_status: bool = False) -> pd.DataFrame:
    """One group's runs, best first by the first metric: run id, name, the parameters that differ, metrics."""
    params = [c for c in runs.columns if c.startswith("params.") and runs[c].astype(str).nunique() > 1]
    metrics = metric_columns(runs, patterns)
    columns = {"run": runs["run_id"].str[:8],
               **({"status": runs["status"]} if with_status else {}),
               **{m: runs[f"metrics.{m}"].round(4) for m in metrics},
               **{c[len("params."):]: runs[c] for c in params},
               "name": runs.get("tags.mlflow.runName", pd.Series("", index=runs.index)).fillna("").str[:40]}
    out = pd.DataFrame(columns)
    if metrics:
        out = out.sort_values(metrics[0], ascending=False, na_position="last")
    return out.reset_index(drop=True)


def render(frame: pd.DataFrame, fmt: str = "table", width: int | None = None) -> str:
    """As text that fits ``width`` (columns dropped from the right, and named), markdown or csv."""
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip()
    if fmt == "markdown":
        header = "| " + " | ".join(frame.columns) + " |"
        rows = ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |"
                for row in frame.itertuples(index=False)]
        return "\n".join([header, "|" + "---|" * len(frame.columns), *rows])
    width = width or shutil.get_terminal_size((120, 24)).columns
    shown, hidden = list(frame.columns), []
    while len(shown) > 2:
        text = frame[shown].to_string(index=False)
        if max(map(len, text.splitlines())) <= width:
            break
        hidden.insert(0, shown.pop())
    text = frame[shown].to_string(index=False)
    return text + (f"\n({len(hidden)} columns not shown: {', '.join(hidden)}; --format csv has all)" if hidden else "")


def compare(uri: str, experiment: str, patterns: list[str] | None = None, fmt: str = "table",
            include_unfinished: bool = False, parent: str | None = None) -> str:
    if fmt not in FORMATS:
        raise EmbedbenchError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    runs = load_runs(uri, experiment, include_unfinished, parent)
    if runs.empty:
        return f"no {'' if include_unfinished else 'finished '}runs in experiment {experiment!r}"
    found = groups(runs)
    if fmt == "csv":  # one file: the group is a column
        frames = [table(group, patterns, include_unfinished).assign(group=heading) for heading, group in found]
        return render(pd.concat(frames, ignore_index=True), fmt)
    parts = []
    for heading, group in found:
        parts += [f"**{heading}**" if fmt == "markdown" else heading, "",
                  render(table(group, patterns, include_unfinished), fmt), ""]
    return "\n".join(parts).rstrip()
