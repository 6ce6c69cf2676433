"""Rows → response models (schemas.py): the one place that reads tables for a response."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from . import crud
from .models import Klass, RecallSession, Source, User
from .schemas import (
    ClassDetail,
    ClassPublic,
    JobPublic,
    MissedPoint,
    SessionDetail,
    SessionPublic,
    SourcePublic,
    UserPublic,
    report_public,
    when,
)


def user_public(u: User) -> UserPublic:
    return UserPublic(id=u.id, name=u.name, is_tutor=u.is_tutor)


def session_public(db: Session, s: RecallSession, owner: str | None = None) -> SessionPublic:
    if owner is None:
        u = db.get(User, s.user_id)
        owner = u.name if u else "?"
    return SessionPublic(
        id=s.id, title=s.title, user=owner, created_at=when(s.created_at),
        source_ids=sorted(x.source_id for x in s.sources),
        job=JobPublic(state=s.job.state, attempts=s.job.attempts,  # type: ignore[arg-type]
                      error=s.job.error),
        marks=[m.mark for m in s.marks])  # type: ignore[misc]


def session_detail(db: Session, s: RecallSession) -> SessionDetail:
    base = session_public(db, s)
    report = report_public(json.loads(s.result.report_json)) if s.result else None
    return SessionDetail(**base.model_dump(), recall=s.recall_text, report=report)


def source_public(db: Session, src: Source, me: User) -> SourcePublic:
    owner = db.get(User, src.owner_id)
    return SourcePublic(id=src.id, name=src.name, size=src.size,
                        owner=owner.name if owner else "?", mine=src.owner_id == me.id,
                        shared_with=crud.shared_with(db, src), created_at=when(src.created_at))


def class_public(db: Session, k: Klass, me: User) -> ClassPublic:
    tutor = db.get(User, k.tutor_id)
    return ClassPublic(id=k.id, name=k.name, tutor=tutor.name if tutor else "?",
                       mine=k.tutor_id == me.id)


def class_detail(db: Session, k: Klass, me: User) -> ClassDetail:
    return ClassDetail(
        **class_public(db, k, me).model_dump(),
        members=[user_public(u) for u in crud.members(db, k)],
        sessions=[session_public(db, s, name) for s, name in crud.class_sessions(db, k)],
        most_missed=[MissedPoint(point=p, learners=n, times=t)
                     for p, n, t in crud.most_missed(db, k)])
