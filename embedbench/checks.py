"""Types of the numeric settings, checked before anything runs: Hydra keeps a mistyped value
(``trainer.epochs=one``) as a string, which would otherwise fail deep inside the trainer."""
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
