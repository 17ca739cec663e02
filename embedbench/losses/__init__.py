"""Objectives: functions of view embeddings, and SMAE's masked-LM pre-training of the views' sub-networks.
``build_objective`` maps ``loss=`` to one."""
from __future__ import annotations

from dataclasses import fields
from functools import partial

from embedbench.config import LossConfig, ObjectiveConfig
from embedbench.errors import EmbedbenchError
from embedbench.losses.cached import CachedViewObjective
from embedbench.losses.dsimplex import DSimplex, simplex
from embedbench.losses.infonce import InfoNCE
from embedbench.losses.listwise import KLDistill, MarginMSE, ScoreMSE, Wasserstein
from embedbench.losses.scored import ScoredPairLoss
from embedbench.losses.smae import SMAE
from embedbench.losses.views import ViewObjective

BASE_LOSSES = {"infonce": InfoNCE, "cached_infonce": InfoNCE, "cosent": partial(ScoredPairLoss, "cosent"),
               "angle": partial(ScoredPairLoss, "angle"), "margin_mse": MarginMSE, "kl_distill": KLDistill,
               "score_mse": ScoreMSE, "wasserstein": Wasserstein, "dsimplex": DSimplex}

OBJECTIVE_SETTINGS = ("name", "mini_batch_size", "compat")  # loss= settings of the objective, not its base


def build_objective(loss: LossConfig, encoder, views, objective: ObjectiveConfig, seed: int = 0,
                    on_nonfinite: str = "stop", in_batch_negatives: bool = True,
                    classes: int | None = None) -> ViewObjective | SMAE:
    """``loss=`` is the base; the model's ``objective`` block says which views it covers and how.
    A ``mini_batch_size`` (``loss=cached_infonce``) turns on GradCache; ``in_batch_negatives=False`` (a
    source's setting) keeps each query to its own candidates; ``classes``: the training set's number of
    classes, for a classifier loss."""
    if loss.name == "smae":  # token-level, not a function of view embeddings
        return SMAE(encoder, views, loss.mlm_probability, loss.decoder_mlm_probability, loss.mae,
                    loss.decoder_layers, seed, str(on_nonfinite))
    if loss.name not in BASE_LOSSES:
        raise EmbedbenchError(f"loss.name={loss.name}: unknown; choose one of "
                              f"{', '.join(sorted([*BASE_LOSSES, 'smae']))}")
    params = {f.name: getattr(loss, f.name) for f in fields(loss) if f.name not in OBJECTIVE_SETTINGS}
    if not in_batch_negatives:
        if BASE_LOSSES[loss.name] is not InfoNCE:
            raise EmbedbenchError(f"in_batch_negatives: false: loss={loss.name} has no in-batch negatives to turn "
                                  "off (infonce and cached_infonce have)")
        params["in_batch_negatives"] = False
    if BASE_LOSSES[loss.name] is DSimplex:
        if not classes:
            raise EmbedbenchError("loss=dsimplex needs class labels: data.format=classes on a labelled table")
        simplex(classes, min(view.dim for view in views.views))  # every view must hold the simplex: say so now
        params["classes"] = classes
    try:
        base = BASE_LOSSES[loss.name](**params)
    except TypeError as exc:  # a loss.name pointed at another loss's settings
        raise EmbedbenchError(f"loss={loss.name}: {exc}") from None
    mini_batch_size = getattr(loss, "mini_batch_size", None)
    cached = {"mini_batch_size": mini_batch_size} if mini_batch_size else {}
    return (CachedViewObjective if cached else ViewObjective)(
        encoder, views, base, **cached, sample=objective.sample, sample_dims=objective.sample_dims,
        align_weight=objective.align_weight, align_temperature=objective.align_temperature,
        on_nonfinite=str(on_nonfinite), seed=seed)
