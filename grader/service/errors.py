"""The service's errors: AnkigenErrors like the rest, each with the HTTP status it answers.

app.py has one handler for AnkigenError: a class here carries its status; the grader's own
errors map by kind (a bad source or recall → 422, a model endpoint that failed → 502).
"""

from __future__ import annotations

from ankigen.errors import AnkigenError, EndpointError, InputError, ModelOutputError
from grader.errors import GraderError, RecallError, SourceError


class ServiceError(GraderError):
    status = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"


class NotFound(ServiceError):
    """Also what another user's data answers: its existence is not ours to tell."""

    status, code = 404, "not_found"


class Forbidden(ServiceError):
    status, code = 403, "forbidden"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class TooLarge(ServiceError):
    status, code = 413, "too_large"


class Invalid(ServiceError):
    status, code = 422, "invalid"


class TooMany(ServiceError):
    status, code = 429, "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def status_of(exc: AnkigenError) -> tuple[int, str]:
    if isinstance(exc, ServiceError):
        return exc.status, exc.code
    if isinstance(exc, EndpointError | ModelOutputError):
        return 502, "model_endpoint"
    if isinstance(exc, SourceError | RecallError | InputError):
        return 422, "invalid"
    return 500, "internal"
