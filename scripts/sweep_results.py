"""The finished jobs of a Hydra multirun folder, for the table scripts: ``sweep_results(argv_doc)``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def sweep_results(description: str) -> list[dict]:
    """Parse the command line (one argument: the sweep folder) and return each job's results.json, in job
    order; exit with one line when the folder holds none."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", type=Path, help="the multirun folder (outputs/multirun/<date>/<time>)")
    folder = parser.parse_args().sweep
    paths = sorted(folder.glob("*/results.json"), key=lambda p: int(p.parent.name))
    if not paths:
        raise SystemExit(f"{folder}: no results.json in its job folders")
    return [json.loads(path.read_text()) for path in paths]
