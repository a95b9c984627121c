"""User-facing errors.

Every problem a user can fix (a bad file, a bad flag, a bad config value) is raised as a
:class:`SeglabError`. The CLI prints its message without a traceback and exits with code 2.
Messages say what was expected, what was found, where, and how to fix it.
"""

from __future__ import annotations


class SeglabError(Exception):
    """A problem the user can fix; the CLI shows the message and exits with code 2."""

    exit_code = 2


class ConfigError(SeglabError):
    """A config key or value is unknown or invalid."""


class DataError(SeglabError):
    """A dataset file or layout is missing, unreadable or malformed."""


class ModelError(SeglabError):
    """An unknown model name, a bad model option or a weight file that does not fit."""


class CheckpointError(SeglabError):
    """A checkpoint file is missing, corrupt or not a seglab checkpoint."""
