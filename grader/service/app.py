"""The FastAPI application: routers, the one error handler, limits and security headers."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import RequestResponseEndpoint

from ankigen.errors import AnkigenError
from grader import __version__

from .config import Settings, get_settings
from .errors import TooLarge, TooMany, status_of
from .jobs import Queue, make_queue

log = logging.getLogger(__name__)
API = "/api"
# Pages load nothing from elsewhere and run no script: learner text can never execute.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def create_app(settings: Settings | None = None, queue: Queue | None = None) -> FastAPI:
    """`settings` default to the environment's; the database must be migrated (serve does)."""
    from .routes import classes, health, pages, recalls, reports, sources

    settings = settings or get_settings()
    app = FastAPI(title="ankigen grader", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=f"{API}/openapi.json",
                  description="Submit recall sessions, get them graded against sources, "
                  "download the weak spots as Anki decks. Bearer tokens: `grader user add`.")
    app.state.settings = settings
    app.state.queue = queue or make_queue(settings)
    for r in (health.router, recalls.router, reports.router, sources.router, classes.router):
        app.include_router(r, prefix=API)
    app.include_router(pages.router)
    limit = settings.max_source_bytes + 1_000_000  # multipart framing and form fields

    @app.middleware("http")
    async def headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return _error(request, TooLarge(f"the request is {length} bytes; at most {limit}"))
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if not request.url.path.startswith(API):
            response.headers.setdefault("Content-Security-Policy", CSP)
        return response

    @app.exception_handler(AnkigenError)
    async def ankigen_error(request: Request, exc: AnkigenError) -> Response:
        return _error(request, exc)

    app.openapi = functools.partial(_openapi, app, app.openapi)  # type: ignore[method-assign]

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def out_of_range(request: Request, exc: Exception) -> Response:
        # an id past 64 bits, or a value longer than its column (PostgreSQL enforces
        # lengths): the request's fault, not a 500 (found by schemathesis, issue 17)
        return _respond(request, 422, "invalid", "a value is out of range")

    @app.exception_handler(OperationalError)
    async def store_away(request: Request, exc: Exception) -> Response:
        # the database is restarting or unreachable: say so, and when to try again
        log.warning("the store is unavailable: %s", str(exc).splitlines()[0])
        return _respond(request, 503, "unavailable", "the store is unavailable; try again "
                        "in a few seconds", {"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _respond(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _respond(request, 422, "invalid", f"{where}: {first['msg']}" if where
                        else str(first["msg"]))

    return app


def _openapi(app: FastAPI, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """FastAPI documents every 422 as its own list of validation errors, but `invalid` below
    answers with the one error shape: say so in the schema (schemathesis, issue 17)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = build()
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            if "422" in op.get("responses", {}):
                op["responses"]["422"]["content"] = body
    for unused in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(unused, None)
    app.openapi_schema = schema
    return schema


def _error(request: Request, exc: AnkigenError) -> Response:
    from .deps import LoginNeeded

    status, code = status_of(exc)
    if status == 500:
        log.error("unexpected %s: %s", type(exc).__name__, exc)
    if isinstance(exc, LoginNeeded) and not request.url.path.startswith(API):
        return RedirectResponse("/login", status_code=303)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, TooMany) else {}
    return _respond(request, status, code, str(exc), headers)


def _respond(request: Request, status: int, code: str, detail: str,
             headers: dict[str, str] | None = None) -> Response:
    if request.url.path.startswith(API):
        return JSONResponse({"detail": detail, "code": code}, status_code=status, headers=headers)
    from .routes.pages import error_page

    return error_page(request, status, detail, headers)
