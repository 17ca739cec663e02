"""The installed package works on its own: a wheel built from this checkout, installed into a fresh
environment (its dependencies taken from this one), runs from an empty folder outside the checkout."""
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import DATA, REPO, needs_data

pytestmark = pytest.mark.slow


def _run(args, cwd, **env):
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **env})
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The ``bin`` folder of a new virtual environment holding embedbench from a freshly built wheel."""
    root = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"),
          str(REPO)], cwd=root)
    [wheel] = (root / "dist").glob("embedbench-*.whl")
    _run([sys.executable, "-m", "venv", str(root / "env")], cwd=root)
    bin_dir = root / "env" / "bin"
    site = Path(_run([str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=root).stdout.strip())
    # the dependencies, not embedbench: a path entry does not run the editable install's .pth hook
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], cwd=root)
    return bin_dir


def test_the_wheel_carries_the_configs_and_runs_outside_the_checkout(installed, tmp_path):
    where = _run([str(installed / "python"), "-c", "import embedbench; print(embedbench.__file__)"], cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(installed.parent) and REPO not in tmp_path.parents
    job = _run([str(installed / "embedbench"), "eval", "--cfg", "job"], cwd=tmp_path).stdout
    assert "name: minilm" in job and "type: retrieval" in job
    assert not (tmp_path / "outputs").exists()
    matrices = _run([str(installed / "python"), "-c", "from embedbench.reproduce import SHIPPED; "
                     "print(sorted(p.name for p in SHIPPED.glob('*.yaml')))"], cwd=tmp_path).stdout
    assert "'beir.yaml', 'local.yaml'" in matrices


@needs_data
def test_the_installed_tool_scores_a_task(installed, tmp_path):
    _run([str(installed / "embedbench"), "eval", "eval=sts", "eval.max_pairs=50"], cwd=tmp_path,
         EMBEDBENCH_DATA=str(DATA))
    [results] = (tmp_path / "outputs" / "runs").rglob("results.json")
    assert 0 < json.loads(results.read_text())["metrics"]["stsb/spearman"] <= 1
