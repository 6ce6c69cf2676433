"""Dependencies: settings, the database session, the queue and the current user. Handlers
never open sessions or read tokens themselves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from . import crud
from .config import Settings
from .db import session_factory
from .errors import ServiceError, Unauthorized
from .jobs import Queue
from .models import User

COOKIE = "ankigen_token"
CSRF_COOKIE = "ankigen_csrf"


class LoginNeeded(ServiceError):
    """A page asked for without the login cookie: pages answer with the login form."""

    status, code = 401, "login_needed"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_db(settings: SettingsDep) -> Iterator[Session]:
    with session_factory(settings.database_url)() as db:
        yield db


SessionDep = Annotated[Session, Depends(get_db)]


def get_queue(request: Request) -> Queue:
    queue: Queue = request.app.state.queue
    return queue


QueueDep = Annotated[Queue, Depends(get_queue)]

_bearer = HTTPBearer(auto_error=False, description="`grader user add NAME` prints a token")


def current_user(db: SessionDep, creds: Annotated[HTTPAuthorizationCredentials | None,
                                                  Depends(_bearer)]) -> User:
    if creds is None:
        raise Unauthorized("send 'Authorization: Bearer <token>' (grader user add NAME prints one)")
    user = crud.user_for_token(db, creds.credentials)
    if user is None:
        raise Unauthorized("the token is unknown or revoked")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def page_user(request: Request, db: SessionDep) -> User:
    user = crud.user_for_token(db, request.cookies.get(COOKIE, ""))
    if user is None:
        raise LoginNeeded("log in first")
    return user


PageUser = Annotated[User, Depends(page_user)]
