"""Sources: upload, list (own and shared with my classes), share with a class, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile, status

from .. import crud, present
from ..deps import CurrentUser, SessionDep, SettingsDep
from ..schemas import ErrorBody, ShareRequest, SourcePublic
from ..uploads import read_limited

router = APIRouter(prefix="/sources", tags=["sources"])
ERRORS: dict[int | str, dict[str, object]] = {
    c: {"model": ErrorBody} for c in (401, 404, 413, 422)}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SourcePublic,
             responses=ERRORS)
async def upload(file: Annotated[UploadFile, File(description=".md or .txt, at most 20 MB")],
                 db: SessionDep, user: CurrentUser, settings: SettingsDep) -> SourcePublic:
    data = await read_limited(file, settings.max_source_bytes, "source")
    src = crud.add_source(db, user, file.filename or "", data, settings.max_source_bytes)
    return present.source_public(db, src, user)


@router.get("", response_model=list[SourcePublic], responses=ERRORS)
def list_(db: SessionDep, user: CurrentUser) -> list[SourcePublic]:
    return [present.source_public(db, s, user) for s in crud.visible_sources(db, user)]


@router.post("/{source_id}/share", response_model=SourcePublic, responses=ERRORS)
def share(source_id: int, body: ShareRequest, db: SessionDep, user: CurrentUser) -> SourcePublic:
    return present.source_public(db, crud.share_source(db, user, source_id, body.class_id), user)


@router.delete("/{source_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS)
def delete(source_id: int, db: SessionDep, user: CurrentUser) -> Response:
    crud.delete_source(db, user, source_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
