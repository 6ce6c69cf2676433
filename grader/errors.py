"""The grader's exception hierarchy. Each is a user-facing problem whose message is the whole
explanation; the CLI prints it as one line and exits non-zero.

GraderError derives from AnkigenError so one `except AnkigenError` (and ankigen's own
`path:line:` formatting) serves both packages' CLIs: the grader reads notes through ankigen,
and a bad recall file fails there first.
"""

from __future__ import annotations

from ankigen.errors import AnkigenError, EndpointError, ModelOutputError, OutputError

# The model client moved to ankigen/llm.py with its errors; they are the same classes here, so
# `except EndpointError` catches them from either import (one OutputError, not two).
__all__ = [
    "EndpointError",
    "EvalError",
    "GraderError",
    "ModelOutputError",
    "OutputError",
    "RecallError",
    "SourceError",
]


class GraderError(AnkigenError):
    """Anything the grader cannot do as asked."""


class SourceError(GraderError):
    """A source that is missing, unreadable, empty or of a kind we do not read."""


class RecallError(GraderError):
    """A recall session with nothing to grade."""


class EvalError(GraderError):
    """A labelled folder the evaluation cannot use."""
