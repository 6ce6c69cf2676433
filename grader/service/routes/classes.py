"""Classes: a tutor creates one, adds learners, and reads its sessions and most-missed points."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from .. import crud, present
from ..deps import CurrentUser, SessionDep
from ..schemas import ClassCreate, ClassDetail, ClassPublic, ErrorBody, MemberAdd, UserPublic

router = APIRouter(prefix="/classes", tags=["classes"])
ERRORS: dict[int | str, dict[str, object]] = {c: {"model": ErrorBody} for c in (401, 403, 404)}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ClassPublic,
             responses=ERRORS)
def create(body: ClassCreate, db: SessionDep, user: CurrentUser) -> ClassPublic:
    return present.class_public(db, crud.create_class(db, user, body.name), user)


@router.get("", response_model=list[ClassPublic], responses=ERRORS)
def list_(db: SessionDep, user: CurrentUser) -> list[ClassPublic]:
    return [present.class_public(db, k, user) for k in crud.classes_of(db, user)]


@router.get("/{class_id}", response_model=ClassDetail, responses=ERRORS)
def get(class_id: int, db: SessionDep, user: CurrentUser) -> ClassDetail:
    return present.class_detail(db, crud.tutor_class(db, user, class_id), user)


@router.post("/{class_id}/members", status_code=status.HTTP_201_CREATED,
             response_model=UserPublic, responses=ERRORS)
def add_member(class_id: int, body: MemberAdd, db: SessionDep, user: CurrentUser) -> UserPublic:
    return present.user_public(crud.add_member(db, user, class_id, body.name))


@router.delete("/{class_id}/members/{name}", status_code=status.HTTP_204_NO_CONTENT,
               responses=ERRORS)
def remove_member(class_id: int, name: str, db: SessionDep, user: CurrentUser) -> Response:
    crud.remove_member(db, user, class_id, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
