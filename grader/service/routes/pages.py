"""Server-rendered pages (Jinja2, autoescaped): log in, submit, watch, read marks, download
decks; a tutor's classes. Every form carries a CSRF token that must match its cookie; the
login cookie is HttpOnly, SameSite=Strict, and Secure when served over https."""

from __future__ import annotations

import functools
from typing import Annotated

import jinja2
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from .. import chart, crud, present
from ..deps import COOKIE, CSRF_COOKIE, PageUser, QueueDep, SessionDep, SettingsDep
from ..errors import Forbidden
from ..security import new_csrf, same
from ..uploads import read_limited, recall_text
from . import reports

router = APIRouter(include_in_schema=False)
MARK = {"green": "🟢", "yellow": "🟡", "red": "🔴", None: "·"}
Csrf = Annotated[str, Form()]


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("grader.service", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    env.globals["MARK"] = MARK
    return env


def render(request: Request, name: str, status: int = 200,
           headers: dict[str, str] | None = None, **ctx: object) -> HTMLResponse:
    token = request.cookies.get(CSRF_COOKIE) or new_csrf()
    html = _env().get_template(name).render(csrf=token, **ctx)
    response = HTMLResponse(html, status_code=status, headers=headers)
    if request.cookies.get(CSRF_COOKIE) != token:
        _cookie(request, response, CSRF_COOKIE, token)
    return response


def _cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, max_age=crud.LOGIN_SECONDS, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")


def check_csrf(request: Request, sent: str) -> None:
    if not same(sent, request.cookies.get(CSRF_COOKIE, "")):
        raise Forbidden("this form has expired; reload the page and send it again")


def error_page(request: Request, status: int, detail: str,
               headers: dict[str, str] | None = None) -> Response:
    return render(request, "error.html", status=status, headers=headers, user=None,
                  status_code=status, detail=detail)


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    return render(request, "login.html", user=None, error="")


@router.post("/login")
def login(request: Request, db: SessionDep, token: Annotated[str, Form()],
          csrf: Csrf) -> Response:
    check_csrf(request, csrf)
    user = crud.user_for_token(db, token)
    if user is None:
        return render(request, "login.html", status=401, user=None,
                      error="That token is unknown or revoked.")
    # The cookie holds a token of its own, not the one typed in: logging out revokes it,
    # and the learner's API token (in scripts, on other devices) keeps working.
    crud.end_login(db, request.cookies.get(COOKIE, ""))  # logging in again ends the last one
    browser_token = crud.issue_token(db, user, kind="login")
    db.commit()
    response = _see("/")
    _cookie(request, response, COOKIE, browser_token)
    return response


@router.post("/logout")
def logout(request: Request, db: SessionDep, csrf: Csrf) -> Response:
    check_csrf(request, csrf)
    crud.end_login(db, request.cookies.get(COOKIE, ""))
    response = _see("/login")
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, db: SessionDep, user: PageUser) -> Response:
    sessions = [present.session_public(db, s, user.name) for s in crud.list_sessions(db, user)]
    sources = [present.source_public(db, s, user) for s in crud.visible_sources(db, user)]
    classes = [present.class_public(db, k, user) for k in crud.classes_of(db, user)]
    return render(request, "home.html", user=user, sessions=sessions, sources=sources,
                  classes=classes, chart=Markup(chart.svg(crud.chart_points(db, user))))


@router.post("/sessions")
async def submit(request: Request, db: SessionDep, user: PageUser, settings: SettingsDep,
                 queue: QueueDep, csrf: Csrf, title: Annotated[str, Form()] = "",
                 text: Annotated[str, Form()] = "",
                 source_ids: Annotated[list[int] | None, Form()] = None,
                 file: Annotated[UploadFile | None, File()] = None) -> Response:
    check_csrf(request, csrf)
    if file is not None and file.filename:
        data = await read_limited(file, settings.max_recall_bytes, "recall")
        name, text = recall_text(file.filename, data)
        title = title or name.rsplit(".", 1)[0]
    s = crud.create_session(db, user, title, text, source_ids or [],
                            max_bytes=settings.max_recall_bytes,
                            per_hour=settings.submissions_per_hour)
    queue.enqueue(s.job.id)
    return _see(f"/sessions/{s.id}")


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
def session_page(request: Request, session_id: int, db: SessionDep, user: PageUser) -> Response:
    s = crud.readable_session(db, user, session_id)
    detail = present.session_detail(db, s)
    return render(request, "session.html", user=user, s=detail, mine=s.user_id == user.id,
                  graded=s.result.graded_markdown if s.result else "")


@router.post("/sessions/{session_id}/retry")
def retry(request: Request, session_id: int, db: SessionDep, user: PageUser, queue: QueueDep,
          csrf: Csrf) -> Response:
    check_csrf(request, csrf)
    s = crud.retry_session(db, user, session_id)
    queue.enqueue(s.job.id)
    return _see(f"/sessions/{s.id}")


@router.post("/sessions/{session_id}/delete")
def delete(request: Request, session_id: int, db: SessionDep, user: PageUser,
           csrf: Csrf) -> Response:
    check_csrf(request, csrf)
    crud.delete_session(db, user, session_id)
    return _see("/")


@router.get("/sessions/{session_id}/deck.apkg")
def deck(session_id: int, db: SessionDep, user: PageUser) -> Response:
    return reports.session_deck(db, user, session_id)


@router.get("/weak-spots.apkg")
def weak_spots(db: SessionDep, user: PageUser) -> Response:
    return reports.weak_spots(db, user)


@router.post("/sources")
async def add_source(request: Request, db: SessionDep, user: PageUser, settings: SettingsDep,
                     csrf: Csrf, file: Annotated[UploadFile, File()]) -> Response:
    check_csrf(request, csrf)
    data = await read_limited(file, settings.max_source_bytes, "source")
    crud.add_source(db, user, file.filename or "", data, settings.max_source_bytes)
    return _see("/#sources")


@router.post("/sources/{source_id}/delete")
def delete_source(request: Request, source_id: int, db: SessionDep, user: PageUser,
                  csrf: Csrf) -> Response:
    check_csrf(request, csrf)
    crud.delete_source(db, user, source_id)
    return _see("/#sources")


@router.post("/sources/{source_id}/share")
def share_source(request: Request, source_id: int, db: SessionDep, user: PageUser, csrf: Csrf,
                 class_id: Annotated[int, Form()]) -> Response:
    check_csrf(request, csrf)
    crud.share_source(db, user, source_id, class_id)
    return _see(f"/classes/{class_id}")


@router.post("/classes")
def create_class(request: Request, db: SessionDep, user: PageUser, csrf: Csrf,
                 name: Annotated[str, Form()]) -> Response:
    check_csrf(request, csrf)
    k = crud.create_class(db, user, name)
    return _see(f"/classes/{k.id}")


@router.get("/classes/{class_id}", response_class=HTMLResponse)
def class_page(request: Request, class_id: int, db: SessionDep, user: PageUser) -> Response:
    k = crud.tutor_class(db, user, class_id)
    own = [s for s in crud.visible_sources(db, user) if s.owner_id == user.id]
    return render(request, "class.html", user=user, k=present.class_detail(db, k, user),
                  sources=[present.source_public(db, s, user) for s in own])


@router.post("/classes/{class_id}/members")
def add_member(request: Request, class_id: int, db: SessionDep, user: PageUser, csrf: Csrf,
               name: Annotated[str, Form()]) -> Response:
    check_csrf(request, csrf)
    crud.add_member(db, user, class_id, name.strip())
    return _see(f"/classes/{class_id}")


@router.post("/classes/{class_id}/members/remove")
def remove_member(request: Request, class_id: int, db: SessionDep, user: PageUser, csrf: Csrf,
                  name: Annotated[str, Form()]) -> Response:
    check_csrf(request, csrf)
    crud.remove_member(db, user, class_id, name.strip())
    return _see(f"/classes/{class_id}")


