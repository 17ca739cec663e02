"""Objectives: functions of view embeddings. ``build_objective`` maps ``loss=`` to one."""
from __future__ import annotations

from embedbench.errors import EmbedbenchError
from functools import partial

from embedbench.losses.cached import CachedViewObjective
from embedbench.losses.infonce import InfoNCE
from embedbench.losses.listwise import KLDistill, MarginMSE, ScoreMSE, Wasserstein
from embedbench.losses.scored import ScoredPairLoss
from embedbench.losses.views import ViewObjective

BASE_LOSSES = {"infonce": InfoNCE, "cached_infonce": InfoNCE, "cosent": partial(ScoredPairLoss, "cosent"),
               "angle": partial(ScoredPairLoss, "angle"), "margin_mse": MarginMSE, "kl_distill": KLDistill,
               "score_mse": ScoreMSE, "wasserstein": Wasserstein}


def build_objective(loss_cfg, encoder, views, objective_cfg=None, seed: int = 0,
                    on_nonfinite: str = "stop") -> ViewObjective:
    """``loss=`` is the base; the model's ``objective`` block says which views it covers and how.
    A ``mini_batch_size`` in the loss config turns on GradCache (``loss=cached_infonce``)."""
    params = {k: v for k, v in dict(loss_cfg).items() if k != "name"}
    mini_batch_size = params.pop("mini_batch_size", None)
    try:
        base = BASE_LOSSES[loss_cfg.name](**params)
    except KeyError:
        raise EmbedbenchError(f"loss={loss_cfg.name}: unknown; choose one of {sorted(BASE_LOSSES)}") from None
    except TypeError as exc:
        raise EmbedbenchError(f"loss={loss_cfg.name}: {exc}") from None
    objective = dict(objective_cfg or {})
    cached = {"mini_batch_size": mini_batch_size} if mini_batch_size else {}
    return (CachedViewObjective if cached else ViewObjective)(
        encoder, views, base, **cached, sample=objective.get("sample"), sample_dims=objective.get("sample_dims"),
        align_weight=objective.get("align_weight", 0.0), align_temperature=objective.get("align_temperature", 1.0),
        on_nonfinite=on_nonfinite, seed=seed)
