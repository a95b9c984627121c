"""User-facing errors.

Every problem a user can fix (a bad file, a bad flag, a bad config value) is raised as a
:class:`SeglabError`. The CLI prints its message without a traceback and exits with code 2.
Messages say what was expected, what was found, where, and how to fix it.
"""

from __future__ import annotations

_WORKER_HEADER = "in DataLoader worker process"


class SeglabError(Exception):
    """A problem the user can fix; the CLI shows the message and exits with code 2."""

    exit_code = 2

    def __init__(self, *args: object) -> None:
        super().__init__(*(_unwrap_worker_message(type(self), a) if isinstance(a, str) else a for a in args))


def _unwrap_worker_message(cls: type, message: str) -> str:
    """The user's message inside torch's re-raise from a DataLoader worker.

    torch re-raises a worker's exception in the main process as ``cls("Caught X in DataLoader worker process
    N.\nOriginal Traceback ...\nmodule.X: <message>")``; the user should see the message, not the traceback.
    """
    if not message.startswith("Caught ") or _WORKER_HEADER not in message.split("\n", 1)[0]:
        return message
    for name in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
        at = message.find(f"\n{name}")
        if at >= 0:
            return message[at + 1 + len(name):].rstrip("\n")
    return message


class ConfigError(SeglabError):
    """A config key or value is unknown or invalid."""


class DataError(SeglabError):
    """A dataset file or layout is missing, unreadable or malformed."""


class ModelError(SeglabError):
    """An unknown model name, a bad model option or a weight file that does not fit."""


class CheckpointError(SeglabError):
    """A checkpoint file is missing, corrupt or not a seglab checkpoint."""


class OutputError(SeglabError):
    """An output cannot be written (file-system error) or would overwrite an input."""
