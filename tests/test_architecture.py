"""Data flows down only: every module imports its own layer and those below it, never a job or the CLI."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "embedbench"
LAYERS = [  # bottom to top
    {"errors", "atomic", "config", "allocator", "memory", "distributed", "phases", "tracking_server"},
    {"composition", "embedding"},
    {"retrieval"},
    {"data"},
    {"losses"},
    {"tasks", "plots"},
    {"models", "mteb_reference", "report", "tracking", "sweeps", "compare", "reproduce"},
    {"jobs"},
    {"cli", "__main__"},
]


def layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return next((i for i, names in enumerate(LAYERS) if top in names), -1)


def imports(path: Path) -> set[str]:
    """Every embedbench module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("embedbench"):
            found.add(node.module if node.module != "embedbench" else f"embedbench.{node.names[0].name}")
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("embedbench."))
    return found


MODULES = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("__init__") or m.count(".") > 1))
def test_a_module_imports_only_its_layer_and_below(module):
    own = layer(module)
    assert own >= 0, f"{module}: not in any layer of this test; place it"
    upward = [name for name in imports(MODULES[module]) if layer(name) > own]
    assert not upward, f"{module} (layer {own}) imports {upward} from above it"


def test_the_layers_name_every_top_level_module():
    tops = {m.split(".")[1] for m in MODULES if m.count(".") >= 1} - {"__init__"}
    assert tops == set().union(*LAYERS) - {"__init__"}
