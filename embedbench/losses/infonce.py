"""InfoNCE over in-batch negatives plus optional hard-negative columns, or over each query's own candidates
alone (``in_batch_negatives=False``, for sources whose batch mates may be positives)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from sentence_transformers.util.distributed import all_gather_with_grad, get_rank

from embedbench.errors import EmbedbenchError


class InfoNCE:
    alignment = "scores"  # what a view is aligned to the full view by: its in-batch score distribution

    def __init__(self, temperature: float = 0.05, symmetric: bool = False, gather_across_devices: bool = False,
                 in_batch_negatives: bool = True):
        self.temperature = float(temperature)
        self.symmetric = bool(symmetric)
        self.gather_across_devices = bool(gather_across_devices)
        self.in_batch_negatives = bool(in_batch_negatives)
        if not in_batch_negatives and (symmetric or gather_across_devices):
            raise EmbedbenchError("in_batch_negatives=false: each query meets its own candidates only, so "
                                  "loss.symmetric and loss.gather_across_devices do not apply")

    def gathered(self, tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Every rank's rows in rank order (cross-device negatives) when asked to, else this rank's; and where
        this rank's rows start. Gradients reach each rank's own rows from every rank's loss. Ranks hold equal
        batches: sentence-transformers' trainer drops the uneven last batch under DDP."""
        if not self.gather_across_devices:
            return tensor, 0
        return all_gather_with_grad(tensor), get_rank() * len(tensor)

    def scores_and_targets(self, columns: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of each query over the (gathered) positives and hard negatives, and each query's own positive."""
        if not self.in_batch_negatives:
            if len(columns) < 3:
                raise EmbedbenchError("in_batch_negatives=false needs hard negatives (data.negatives=mined, or a "
                                      "labelled source): a query with its positive alone has nothing to rank")
            candidates = torch.stack(columns[1:], dim=1)  # [batch, 1 + negatives, dim]: the positive first
            scores = torch.einsum("bd,bkd->bk", columns[0], candidates) / self.temperature
            return scores, torch.zeros(len(columns[0]), dtype=torch.long, device=scores.device)
        gathered = [self.gathered(column) for column in columns[1:]]
        candidates = torch.cat([rows for rows, _ in gathered])
        offset = gathered[0][1]
        targets = torch.arange(len(columns[0]), device=columns[0].device) + offset
        return columns[0] @ candidates.T / self.temperature, targets

    def scores(self, columns: list[torch.Tensor]) -> torch.Tensor:
        return self.scores_and_targets(columns)[0]

    def __call__(self, columns: list[torch.Tensor], labels: torch.Tensor | None = None) -> torch.Tensor:
        """columns: [queries, positives, *hard negatives], each [batch, dim] and unit-norm; the target
        of each query is its own positive, so data labels are not used."""
        scores, targets = self.scores_and_targets(columns)
        loss = F.cross_entropy(scores, targets)
        if self.symmetric:
            queries, offset = self.gathered(columns[0])
            backward = F.cross_entropy(columns[1] @ queries.T / self.temperature,
                                       torch.arange(len(columns[1]), device=queries.device) + offset)
            loss = (loss + backward) / 2
        return loss

    def config(self) -> dict:
        return {"temperature": self.temperature, "symmetric": self.symmetric,
                "gather_across_devices": self.gather_across_devices, "in_batch_negatives": self.in_batch_negatives}
