"""Objectives: functions of view embeddings. ``build_objective`` maps ``loss=`` to one."""
from __future__ import annotations

from embedbench.errors import EmbedbenchError
from embedbench.losses.infonce import InfoNCE
from embedbench.losses.views import ViewObjective

BASE_LOSSES = {"infonce": InfoNCE}


def build_objective(loss_cfg, encoder, views) -> ViewObjective:
    params = {k: v for k, v in dict(loss_cfg).items() if k != "name"}
    try:
        base = BASE_LOSSES[loss_cfg.name](**params)
    except KeyError:
        raise EmbedbenchError(f"loss={loss_cfg.name}: unknown; choose one of {sorted(BASE_LOSSES)}") from None
    except TypeError as exc:
        raise EmbedbenchError(f"loss={loss_cfg.name}: {exc}") from None
    return ViewObjective(encoder, views, base)
