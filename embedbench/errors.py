"""One exception type for every input problem, rendered as one line by the CLI."""


class EmbedbenchError(Exception):
    """Bad input or configuration: the message names what is wrong and where."""


class Preempted(EmbedbenchError):
    """Training stopped on a signal after writing a checkpoint: the run is to be continued, not failed."""

    exit_code = 75  # EX_TEMPFAIL, "try again later": what a requeueing launcher expects


def at(path, line: int | None, message: str) -> EmbedbenchError:
    """An error located in a file (and line), e.g. ``corpus.jsonl:1234: not valid JSON``."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return EmbedbenchError(f"{where}: {message}")
