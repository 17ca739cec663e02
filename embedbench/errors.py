"""One exception type for every input problem, rendered as one line by the CLI."""


class EmbedbenchError(Exception):
    """Bad input or configuration: the message names what is wrong and where."""


def at(path, line: int | None, message: str) -> EmbedbenchError:
    """An error located in a file (and line), e.g. ``corpus.jsonl:1234: not valid JSON``."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return EmbedbenchError(f"{where}: {message}")
