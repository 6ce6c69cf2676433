"""A session's graded markdown and deck, and the weak-spot deck of all of a learner's
sessions. Decks go out as `application/apkg` with a filename, which is what lets a phone's
browser hand them to AnkiDroid / AnkiMobile."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import Session

from .. import crud, decks
from ..deps import CurrentUser, SessionDep
from ..errors import Conflict
from ..models import RecallSession, User
from ..schemas import ErrorBody

router = APIRouter(tags=["reports"])
ERRORS: dict[int | str, dict[str, object]] = {c: {"model": ErrorBody} for c in (401, 404, 409)}
APKG: dict[int | str, dict[str, object]] = {
    200: {"content": {decks.APKG_TYPE: {}}, "description": "an Anki package"}, **ERRORS}


def _graded(s: RecallSession) -> decks.Graded:
    if s.result is None:
        raise Conflict(f"session {s.id} is {s.job.state}, not graded yet")
    return decks.Graded(s.user_id, s.id, s.title, s.result.graded_markdown, s.result.graded_at)


def apkg(data: bytes, name: str) -> Response:
    return Response(data, media_type=decks.APKG_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{decks.filename(name)}"',
        "Cache-Control": "no-store"})


def session_deck(db: Session, user: User, session_id: int) -> Response:
    g = _graded(crud.readable_session(db, user, session_id))
    name = decks.session_deck_name(g)
    return apkg(decks.package(name, [g]), f"session-{g.session_id}-{g.title}")


def weak_spots(db: Session, user: User) -> Response:
    graded = [_graded(s) for s in crud.graded_sessions(db, user)]
    return apkg(decks.package(decks.WEAK_SPOTS, graded), "weak-spots")


# Errors are JSON like everywhere: with response_class=PlainTextResponse the schema said
# text/plain for them too (schemathesis, issue 17), so the 200 is declared here instead.
MARKDOWN: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/markdown": {"schema": {"type": "string"}}},
          "description": "the graded session, markdown"}, **ERRORS}


@router.get("/sessions/{session_id}/graded.md", responses=MARKDOWN)
def graded_markdown(session_id: int, db: SessionDep, user: CurrentUser) -> PlainTextResponse:
    g = _graded(crud.readable_session(db, user, session_id))
    return PlainTextResponse(g.markdown, media_type="text/markdown; charset=utf-8")


@router.get("/sessions/{session_id}/deck.apkg", response_class=Response, responses=APKG)
def deck(session_id: int, db: SessionDep, user: CurrentUser) -> Response:
    return session_deck(db, user, session_id)


@router.get("/weak-spots.apkg", response_class=Response, responses=APKG)
def weak_spot_deck(db: SessionDep, user: CurrentUser) -> Response:
    return weak_spots(db, user)
