"""Every query the service makes. Handlers and the worker call these; none builds its own.

Access rule, in one place (`_readable_session`, `visible_sources`): a learner reaches only
their own sessions and sources and the sources shared with a class they are in; a tutor also
reads their classes' sessions. Anything else is NotFound, never Forbidden: another user's ids
are not ours to confirm.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from .errors import Conflict, Forbidden, Invalid, NotFound, TooLarge, TooMany
from .models import (
    Job,
    Klass,
    Member,
    PartMark,
    RecallSession,
    Result,
    SessionSource,
    Shared,
    Source,
    Token,
    User,
    WeakPoint,
)
from .security import matches, new_token, split_token

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SOURCE_SUFFIXES = (".md", ".markdown", ".txt")
QUEUED, RUNNING, GRADED, FAILED = "queued", "running", "graded", "failed"
MAX_ATTEMPTS = 3  # takes of one job whose worker died before it finished


# --- users and tokens ------------------------------------------------------------------


def add_user(db: Session, name: str, *, tutor: bool = False) -> tuple[User, str]:
    if not NAME_RE.match(name):
        raise Invalid(f"a user name is 1-64 letters, digits, '.', '_' or '-' (got {name!r})")
    if db.scalar(select(User).where(User.name == name)) is not None:
        raise Conflict(f"user {name!r} already exists (grader user token {name} gives a new token)")
    user = User(name=name, is_tutor=tutor, created_at=time.time())
    db.add(user)
    db.flush()
    token = issue_token(db, user)
    db.commit()
    return user, token


def user_named(db: Session, name: str) -> User:
    user = db.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user named {name!r}")
    return user


LOGIN_SECONDS = 30 * 24 * 3600  # a browser's login: its cookie and its token live as long


def issue_token(db: Session, user: User, kind: str = "api") -> str:
    token, token_id, secret_hash = new_token()
    now = time.time()
    db.add(Token(id=token_id, user_id=user.id, secret_hash=secret_hash, created_at=now,
                 kind=kind, expires_at=now + LOGIN_SECONDS if kind == "login" else None))
    db.flush()
    return token


def revoke_tokens(db: Session, user: User) -> int:
    rows = db.execute(update(Token).where(Token.user_id == user.id, Token.revoked_at.is_(None))
                      .values(revoked_at=time.time()))
    db.commit()
    return int(rows.rowcount)  # type: ignore[attr-defined]


def _live_token(db: Session, token: str) -> Token | None:
    parts = split_token(token)
    row = db.get(Token, parts[0]) if parts else None
    if parts is None or row is None or row.revoked_at is not None \
            or (row.expires_at is not None and row.expires_at < time.time()) \
            or not matches(parts[1], row.secret_hash):
        return None
    return row


def end_login(db: Session, token: str) -> bool:
    """Revoke a browser's login token (at logout, or a new login over it); False when `token`
    is none, or an API token (a cookie may hold one from before login tokens existed:
    logging out must not break the learner's scripts)."""
    row = _live_token(db, token)
    if row is None or row.kind != "login":
        return False
    row.revoked_at = time.time()
    db.commit()
    return True


def user_for_token(db: Session, token: str) -> User | None:
    row = _live_token(db, token)
    return None if row is None else db.get(User, row.user_id)


# --- sources ---------------------------------------------------------------------------


def clean_name(name: str, suffixes: Sequence[str]) -> str:
    """The file's own name, without any folder a browser or a client sent along."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = "".join(ch for ch in base if ch.isprintable())[:200]
    if not base or base in (".", "..") or not base.lower().endswith(tuple(suffixes)):
        raise Invalid(f"{base or name!r}: upload a {' or '.join(suffixes)} file")
    return base


def add_source(db: Session, user: User, name: str, data: bytes, limit: int) -> Source:
    name = clean_name(name, SOURCE_SUFFIXES)
    if len(data) > limit:
        raise TooLarge(f"{name}: {len(data)} bytes; a source may be at most {limit} bytes")
    if not data.strip():
        raise Invalid(f"{name}: the file is empty")
    src = Source(owner_id=user.id, name=name, content=data, size=len(data),
                 sha256=hashlib.sha256(data).hexdigest(), created_at=time.time())
    db.add(src)
    db.commit()
    return src


def _class_ids(db: Session, user: User) -> list[int]:
    return list(db.scalars(select(Member.class_id).where(Member.user_id == user.id)))


def visible_sources(db: Session, user: User) -> list[Source]:
    shared = select(Shared.source_id).where(Shared.class_id.in_(_class_ids(db, user)))
    return list(db.scalars(select(Source).where(
        or_(Source.owner_id == user.id, Source.id.in_(shared))).order_by(Source.id)))


def shared_with(db: Session, source: Source) -> list[int]:
    return list(db.scalars(select(Shared.class_id).where(Shared.source_id == source.id)))


def own_source(db: Session, user: User, source_id: int) -> Source:
    src = db.get(Source, source_id)
    if src is None or src.owner_id != user.id:
        raise NotFound(f"no source {source_id}")
    return src


def share_source(db: Session, user: User, source_id: int, class_id: int) -> Source:
    src = own_source(db, user, source_id)
    klass = tutor_class(db, user, class_id)
    if db.get(Shared, (klass.id, src.id)) is None:
        db.add(Shared(class_id=klass.id, source_id=src.id))
        db.commit()
    return src


def delete_source(db: Session, user: User, source_id: int) -> None:
    db.delete(own_source(db, user, source_id))
    db.commit()


# --- sessions ---------------------------------------------------------------------------


def create_session(db: Session, user: User, title: str, text: str, source_ids: Sequence[int],
                   *, max_bytes: int, per_hour: int) -> RecallSession:
    """Check, then commit the recall, its sources and a queued job in one transaction: what
    the learner sent is stored before the request returns, whatever happens to grading."""
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise TooLarge(f"the recall is {size} bytes; a session may be at most {max_bytes} bytes")
    if not text.strip():
        raise Invalid("the recall is empty")
    # One submission of a user at a time, whatever API process takes it: a write to the
    # user's row locks it (PostgreSQL) or takes the write lock (SQLite) until the commit, so
    # the count below sees every earlier submission. Without it 20 parallel requests got 15
    # (PostgreSQL) or 11 (SQLite) past a limit of 5 (bench of issue 17's attack item).
    db.execute(update(User).where(User.id == user.id).values(created_at=User.created_at))
    since = time.time() - 3600
    recent = list(db.scalars(select(RecallSession.created_at).where(
        RecallSession.user_id == user.id, RecallSession.created_at > since)
        .order_by(RecallSession.created_at)))
    if len(recent) >= per_hour:
        wait = int(recent[len(recent) - per_hour] - since) + 1
        raise TooMany(f"{per_hour} submissions an hour at most; try again in {wait} s",
                      retry_after_s=wait)
    if not source_ids:
        raise Invalid("choose at least one source to grade against")
    visible = {s.id for s in visible_sources(db, user)}
    for sid in source_ids:
        if sid not in visible:
            raise NotFound(f"no source {sid}")
    now = time.time()
    session = RecallSession(user_id=user.id, title=(title.strip() or "Recall")[:200],
                            recall_text=text, created_at=now)
    session.sources = [SessionSource(source_id=sid) for sid in dict.fromkeys(source_ids)]
    session.job = Job(state=QUEUED, attempts=0, enqueued_at=now, error="", updated_at=now)
    db.add(session)
    db.commit()
    return session


def list_sessions(db: Session, user: User) -> list[RecallSession]:
    return list(db.scalars(select(RecallSession).where(RecallSession.user_id == user.id)
                           .order_by(RecallSession.created_at.desc(), RecallSession.id.desc())))


def _tutors_learner(db: Session, tutor: User, learner_id: int) -> bool:
    if not tutor.is_tutor:
        return False
    q = (select(func.count()).select_from(Member).join(Klass, Klass.id == Member.class_id)
         .where(Klass.tutor_id == tutor.id, Member.user_id == learner_id))
    return bool(db.scalar(q))


def readable_session(db: Session, user: User, session_id: int) -> RecallSession:
    session = db.get(RecallSession, session_id)
    if session is None or (session.user_id != user.id
                           and not _tutors_learner(db, user, session.user_id)):
        raise NotFound(f"no session {session_id}")
    return session


def own_session(db: Session, user: User, session_id: int) -> RecallSession:
    session = db.get(RecallSession, session_id)
    if session is None or session.user_id != user.id:
        raise NotFound(f"no session {session_id}")
    return session


def delete_session(db: Session, user: User, session_id: int) -> None:
    db.delete(own_session(db, user, session_id))
    db.commit()


def retry_session(db: Session, user: User, session_id: int) -> RecallSession:
    session = own_session(db, user, session_id)
    if session.job.state != FAILED:
        raise Conflict(f"session {session_id} is {session.job.state}; only a failed one is retried")
    now = time.time()
    session.job.state, session.job.error = QUEUED, ""
    session.job.lease_owner = session.job.lease_until = None
    session.job.enqueued_at = session.job.updated_at = now
    db.commit()
    return session


def session_sources(db: Session, session: RecallSession) -> list[Source]:
    ids = [s.source_id for s in session.sources]
    return list(db.scalars(select(Source).where(Source.id.in_(ids)).order_by(Source.id)))


def graded_sessions(db: Session, user: User) -> list[RecallSession]:
    """The user's graded sessions, newest first: what the weak-spot deck is made of."""
    return list(db.scalars(
        select(RecallSession).join(Result, Result.session_id == RecallSession.id)
        .where(RecallSession.user_id == user.id)
        .order_by(RecallSession.created_at.desc(), RecallSession.id.desc())))


@dataclass(frozen=True)
class ChartPoint:
    session_id: int
    when: float
    chapter: str
    mark: str | None


def chart_points(db: Session, user: User) -> list[ChartPoint]:
    rows = db.execute(
        select(PartMark.session_id, RecallSession.created_at, PartMark.chapter, PartMark.topic,
               PartMark.mark).join(RecallSession, RecallSession.id == PartMark.session_id)
        .where(RecallSession.user_id == user.id).order_by(RecallSession.created_at))
    return [ChartPoint(sid, when, f"chapter {chapter}" if chapter else topic[:40], mark)
            for sid, when, chapter, topic, mark in rows]


# --- classes -----------------------------------------------------------------------------


def create_class(db: Session, user: User, name: str) -> Klass:
    if not user.is_tutor:
        raise Forbidden("only a tutor creates classes (grader user add NAME --tutor)")
    if not name.strip():
        raise Invalid("a class needs a name")
    klass = Klass(name=name.strip()[:120], tutor_id=user.id, created_at=time.time())
    db.add(klass)
    db.commit()
    return klass


def tutor_class(db: Session, user: User, class_id: int) -> Klass:
    klass = db.get(Klass, class_id)
    if klass is None or klass.tutor_id != user.id:
        raise NotFound(f"no class {class_id}")
    return klass


def classes_of(db: Session, user: User) -> list[Klass]:
    return list(db.scalars(select(Klass).where(or_(
        Klass.tutor_id == user.id, Klass.id.in_(_class_ids(db, user)))).order_by(Klass.id)))


def add_member(db: Session, user: User, class_id: int, name: str) -> User:
    klass = tutor_class(db, user, class_id)
    learner = user_named(db, name)
    if db.get(Member, (klass.id, learner.id)) is None:
        db.add(Member(class_id=klass.id, user_id=learner.id))
        db.commit()
    return learner


def remove_member(db: Session, user: User, class_id: int, name: str) -> None:
    """Take a learner out of the tutor's class: the tutor no longer sees their sessions
    (unless another of the tutor's classes holds them) and they lose the class's sources.
    Their own sessions stay theirs."""
    klass = tutor_class(db, user, class_id)
    learner = user_named(db, name)
    row = db.get(Member, (klass.id, learner.id))
    if row is None:
        raise NotFound(f"{learner.name} is not in class {klass.id}")
    db.delete(row)
    db.commit()


def members(db: Session, klass: Klass) -> list[User]:
    return list(db.scalars(select(User).join(Member, Member.user_id == User.id)
                           .where(Member.class_id == klass.id).order_by(User.name)))


def class_sessions(db: Session, klass: Klass) -> list[tuple[RecallSession, str]]:
    rows = db.execute(
        select(RecallSession, User.name).join(User, User.id == RecallSession.user_id)
        .join(Member, Member.user_id == User.id).where(Member.class_id == klass.id)
        .order_by(RecallSession.created_at.desc()))
    return [(s, n) for s, n in rows]


def most_missed(db: Session, klass: Klass, limit: int = 20) -> list[tuple[str, int, int]]:
    """(point, learners who missed it, times missed), most learners first."""
    rows = db.execute(
        select(WeakPoint.point, func.count(func.distinct(RecallSession.user_id)), func.count())
        .join(RecallSession, RecallSession.id == WeakPoint.session_id)
        .join(Member, Member.user_id == RecallSession.user_id)
        .where(Member.class_id == klass.id)
        .group_by(WeakPoint.point).order_by(func.count(func.distinct(RecallSession.user_id))
                                            .desc(), func.count().desc(), WeakPoint.point)
        .limit(limit))
    return [(p, int(u), int(n)) for p, u, n in rows]


# --- jobs: the row is the truth ----------------------------------------------------------


def take_job(db: Session, job_id: int, owner: str, lease_s: float) -> bool:
    """Take a queued job, or one whose lease ran out, in one conditional UPDATE: of two
    workers that try at once, exactly one gets rowcount 1."""
    now = time.time()
    rows = db.execute(update(Job).where(Job.id == job_id, or_(
        Job.state == QUEUED, (Job.state == RUNNING) & (Job.lease_until < now)))
        .values(state=RUNNING, lease_owner=owner, lease_until=now + lease_s,
                attempts=Job.attempts + 1, updated_at=now))
    db.commit()
    return int(rows.rowcount) == 1  # type: ignore[attr-defined]


def renew_lease(db: Session, job_id: int, owner: str, lease_s: float) -> bool:
    now = time.time()
    rows = db.execute(update(Job).where(Job.id == job_id, Job.state == RUNNING,
                                        Job.lease_owner == owner)
                      .values(lease_until=now + lease_s, updated_at=now))
    db.commit()
    return int(rows.rowcount) == 1  # type: ignore[attr-defined]


def finish_job(db: Session, job_id: int, owner: str, result: Result,
               marks: Sequence[PartMark], points: Sequence[WeakPoint]) -> bool:
    """Store the result and mark the job graded, in one transaction, only while we still
    hold the lease: a worker that lost it (it was presumed dead) stores nothing."""
    now = time.time()
    rows = db.execute(update(Job).where(Job.id == job_id, Job.state == RUNNING,
                                        Job.lease_owner == owner)
                      .values(state=GRADED, lease_until=None, updated_at=now, error=""))
    if int(rows.rowcount) != 1:  # type: ignore[attr-defined]
        db.rollback()
        return False
    db.add(result)
    db.add_all([*marks, *points])
    db.commit()
    return True


def fail_job(db: Session, job_id: int, owner: str, message: str) -> bool:
    rows = db.execute(update(Job).where(Job.id == job_id, Job.state == RUNNING,
                                        Job.lease_owner == owner)
                      .values(state=FAILED, lease_until=None, updated_at=time.time(),
                              error=message))
    db.commit()
    return int(rows.rowcount) == 1  # type: ignore[attr-defined]


def jobs_to_enqueue(db: Session, stale_after_s: float) -> list[int]:
    """Jobs whose worker died (lease expired) go back to queued; those, and queued jobs not
    handed to the queue for `stale_after_s` (a lost queue entry), are returned to enqueue."""
    now = time.time()
    # A job whose worker died MAX_ATTEMPTS times is failed, not retried for ever: something
    # in it (or the machine) kills workers. The learner may still retry it by hand.
    db.execute(update(Job).where(Job.state == RUNNING, Job.lease_until < now,
                                 Job.attempts >= MAX_ATTEMPTS)
               .values(state=FAILED, lease_owner=None, lease_until=None, updated_at=now,
                       error=f"grading stopped {MAX_ATTEMPTS} times without finishing (the "
                       "worker died); retry, or tell your tutor if it happens again"))
    db.execute(update(Job).where(Job.state == RUNNING, Job.lease_until < now)
               .values(state=QUEUED, lease_owner=None, lease_until=None, enqueued_at=0.0,
                       updated_at=now))
    ids = list(db.scalars(select(Job.id).where(Job.state == QUEUED,
                                               Job.enqueued_at < now - stale_after_s)))
    if ids:
        db.execute(update(Job).where(Job.id.in_(ids)).values(enqueued_at=now))
    db.commit()
    return ids
