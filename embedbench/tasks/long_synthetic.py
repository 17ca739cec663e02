"""LongEmbed's synthetic suite as tasks: one retrieval task per kind and length (``passkey_1024``), their
average under the suite's name, and the main score along length for each kind (a curve and a plot)."""
from __future__ import annotations

from dataclasses import dataclass

from embedbench.tasks.retrieval import SubsetAverage


@dataclass
class LengthSweep(SubsetAverage):
    lengths: dict[str, dict[int, str]] = None  # kind -> tokens -> task name

    def by_length(self, metrics: dict[str, float]) -> dict[str, dict[int, float]]:
        """``<suite>/<kind>/<metric>/by_length``: the main score (full view) at each length."""
        metric = self.parts[0].main_metric
        return {f"{self.name}/{kind}/{metric}/by_length": {tokens: metrics[f"{name}/{metric}"]
                                                          for tokens, name in sorted(names.items())}
                for kind, names in self.lengths.items()}
