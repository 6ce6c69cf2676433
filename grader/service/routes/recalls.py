"""Recall sessions: submit (JSON or an upload) → 202 with the job, list, get, delete, retry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile, status

from .. import crud, present
from ..deps import CurrentUser, QueueDep, SessionDep, SettingsDep
from ..schemas import ErrorBody, SessionCreate, SessionDetail, SessionPublic
from ..uploads import read_limited, recall_text

router = APIRouter(prefix="/sessions", tags=["sessions"])
ERRORS: dict[int | str, dict[str, object]] = {
    c: {"model": ErrorBody} for c in (401, 404, 413, 422, 429)}


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=SessionPublic,
             responses=ERRORS)
def create(body: SessionCreate, db: SessionDep, user: CurrentUser, settings: SettingsDep,
           queue: QueueDep) -> SessionPublic:
    s = crud.create_session(db, user, body.title, body.text, body.source_ids,
                            max_bytes=settings.max_recall_bytes,
                            per_hour=settings.submissions_per_hour)
    queue.enqueue(s.job.id)
    db.refresh(s)
    return present.session_public(db, s, user.name)


@router.post("/upload", status_code=status.HTTP_202_ACCEPTED, response_model=SessionPublic,
             responses=ERRORS)
async def upload(file: Annotated[UploadFile, File(description="the recall, .md or .txt")],
                 source_ids: Annotated[list[int], Form()], db: SessionDep, user: CurrentUser,
                 settings: SettingsDep, queue: QueueDep,
                 title: Annotated[str, Form(max_length=200)] = "") -> SessionPublic:
    data = await read_limited(file, settings.max_recall_bytes, "recall")
    name, text = recall_text(file.filename or "recall.md", data)
    s = crud.create_session(db, user, title or name.rsplit(".", 1)[0], text, source_ids,
                            max_bytes=settings.max_recall_bytes,
                            per_hour=settings.submissions_per_hour)
    queue.enqueue(s.job.id)
    db.refresh(s)
    return present.session_public(db, s, user.name)


@router.get("", response_model=list[SessionPublic], responses=ERRORS)
def list_(db: SessionDep, user: CurrentUser) -> list[SessionPublic]:
    return [present.session_public(db, s, user.name) for s in crud.list_sessions(db, user)]


@router.get("/{session_id}", response_model=SessionDetail, responses=ERRORS)
def get(session_id: int, db: SessionDep, user: CurrentUser) -> SessionDetail:
    return present.session_detail(db, crud.readable_session(db, user, session_id))


@router.delete("/{session_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete(session_id: int, db: SessionDep, user: CurrentUser) -> Response:
    crud.delete_session(db, user, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{session_id}/retry", status_code=status.HTTP_202_ACCEPTED,
             response_model=SessionPublic, responses=ERRORS)
def retry(session_id: int, db: SessionDep, user: CurrentUser, queue: QueueDep) -> SessionPublic:
    s = crud.retry_session(db, user, session_id)
    queue.enqueue(s.job.id)
    db.refresh(s)
    return present.session_public(db, s, user.name)


