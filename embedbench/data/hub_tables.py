"""Tables of Hugging Face datasets: the configs and splits of one dataset, from the Hub or from a folder that
``save_to_disk`` wrote (one sub-folder per config, or the dataset itself), read offline."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from embedbench.errors import EmbedbenchError, at


class HubDataset:
    """The configs of one dataset, from a local folder or the Hub."""

    def __init__(self, source: str, revision: str | None, key: str):
        self.source, self.revision, self.key = source, revision, key
        self.local = Path(source).expanduser().is_dir()

    def configs(self) -> list[str]:
        if self.local:
            return sorted(p.name for p in Path(self.source).expanduser().iterdir() if p.is_dir())
        from datasets import get_dataset_config_names

        return get_dataset_config_names(self.source, revision=self.revision)

    def load(self, config: str | None):
        """``config``'s splits (or its one table); None: the dataset's default config (locally, the folder)."""
        from datasets import load_dataset, load_from_disk

        try:
            if self.local:
                folder = Path(self.source).expanduser()
                return load_from_disk(str(folder / config if config else folder))
            return load_dataset(self.source, config, revision=self.revision)
        except (FileNotFoundError, ValueError, ConnectionError) as exc:
            raise EmbedbenchError(f"{self.key}={self.source}: cannot load config {config!r} ({exc})") from None

    def only_split(self, config: str):
        table = self.load(config)
        return next(iter(table.values())) if hasattr(table, "values") else table

    def split(self, config: str | None, split: str):
        table = self.load(config)
        if not hasattr(table, "keys"):
            return table
        if split not in table:
            raise EmbedbenchError(f"{self.key}={self.source}: config {config!r} has no split {split!r} "
                                  f"(splits: {', '.join(table)})")
        return table[split]


@dataclass(frozen=True)
class HubTable:
    """One split of a dataset read as rows of named columns, as a jsonl file's lines are read; it names
    itself in errors as ``<key>=<dataset>[<config>/<split>]``, each row by its 1-based number."""
    source: str
    config: str | None
    split: str
    revision: str | None = None
    key: str = "data.hub"

    def __str__(self) -> str:
        return f"{self.key}={self.source}[{self.config + '/' if self.config else ''}{self.split}]"

    def records(self, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
        table = HubDataset(self.source, self.revision, self.key).split(self.config, self.split)
        missing = [name for name in required if name not in table.column_names]
        if missing:
            raise at(self, None, f"no column {missing[0]!r} (columns: {', '.join(table.column_names)})")
        yield from enumerate(table, 1)
