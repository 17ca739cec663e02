"""Named phases of a job (loading, training, encoding <task>, scoring <task>): each announced in the log as
it starts and timed, a phase nested in another (encoding inside scoring) counted once, in the inner one."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("embedbench")


class Phases:
    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()
        self._stack: list[list[float]] = []  # per open phase: [its start, time spent in phases inside it]

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        log.info("[%s]", name)
        self.seconds.setdefault(name, 0.0)  # listed in the order the phases began
        self._stack.append([time.perf_counter(), 0.0])
        try:
            yield
        finally:
            start, inner = self._stack.pop()
            took = time.perf_counter() - start
            self.seconds[name] = self.seconds.get(name, 0.0) + took - inner
            if self._stack:
                self._stack[-1][1] += took

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def summary(self) -> str:
        return ", ".join(f"{name} {format_seconds(s)}" for name, s in self.seconds.items())


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
