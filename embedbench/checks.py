"""Settings checked before anything runs (and before the slow imports, so a typo costs a second):
the numeric ones, which Hydra keeps as a string when mistyped (``trainer.epochs=one``) and which would
otherwise fail deep inside the trainer, and the device, encoding and model-folder choices."""
from __future__ import annotations

from omegaconf import OmegaConf

from embedbench.errors import EmbedbenchError

NUMBERS = {
    "seed": int,
    "encode.batch_size": int,
    "trainer.epochs": float, "trainer.max_steps": int, "trainer.batch_size": int, "trainer.lr": float,
    "trainer.warmup": float, "trainer.weight_decay": float, "trainer.grad_accum": int,
    "trainer.log_every": int, "trainer.save_every": int, "trainer.max_examples": int,
    "eval.max_queries": int, "eval.max_docs": int, "eval.max_pairs": int, "eval.cache_max_gb": float,
}
AUTO = {"encode.batch_size"}  # settings that also take "auto"


def check_numbers(cfg) -> None:
    for key, kind in NUMBERS.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None or (key in AUTO and value == "auto"):
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            ok = ok and float(value).is_integer()
        if not ok:
            wanted = ("an integer" if kind is int else "a number") + (" or auto" if key in AUTO else "")
            raise EmbedbenchError(f"{key}={value}: expected {wanted}")


def check_choices(cfg) -> None:
    """``device``, ``encode.*`` and the model's folder name things this machine has (the same resolution
    the run makes)."""
    from embedbench.encoder import resolve_device, resolve_encoding, resolve_model_path
    from embedbench.sharding import resolve_devices

    if cfg.model.get("kind") != "lexical":
        resolve_model_path(str(cfg.model.name_or_path))
    device = resolve_device(cfg.device)
    resolve_encoding(cfg.encode, device)
    resolve_devices(cfg.encode.get("devices", "auto"), device)
