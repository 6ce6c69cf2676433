"""One exception hierarchy: the CLI turns any AnkigenError into one line and exit code 1.

The grader's errors (grader/errors.py) derive from AnkigenError too. The model endpoint's errors
live here because the client does (ankigen/llm.py); grader/errors.py re-exports them.
"""

from __future__ import annotations


class AnkigenError(Exception):
    """A user-facing problem: the message is the whole explanation."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.bare = message
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class InputError(AnkigenError):
    """A path that is missing, empty, or not notes."""


class OutputError(AnkigenError):
    """Somewhere we cannot write."""


class EndpointError(AnkigenError):
    """An OpenAI-compatible endpoint that is unreachable, refuses us, or keeps failing."""


class EndpointUnavailable(EndpointError):
    """No answer can come now: the endpoint cannot be reached, or the time budget is spent.
    A caller with more to ask stops asking (a refused request is an EndpointError only)."""


class ModelOutputError(AnkigenError):
    """A model answer that is still malformed after one re-ask."""


class CheckError(AnkigenError):
    """The check runner could not run at all (not a failing check: that is a result)."""


class SandboxUnavailable(CheckError):
    """Checks are refused: this machine cannot give them the whole sandbox (docs/checks.md,
    "Threat model"). Nothing ran; the message says why and how to get one."""

    exit_code = 5
