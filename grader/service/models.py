"""Tables (SQLAlchemy 2). Request and response shapes live apart in schemas.py.

Times are epoch seconds (float) so SQLite and PostgreSQL store and compare them alike. The job
row is the truth about grading: huey only carries job ids (jobs.py). Everything derived from a
session (its job, result, marks, weak points) goes with it (ON DELETE CASCADE and the ORM's
delete-orphan, so either path removes it).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints, so migrations can alter them on any backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_tutor: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)


class Token(Base):
    """A bearer token: `<id>.<secret>`; only the secret's SHA-256 is stored. `kind` "api" is
    one `grader user add/token` printed (no expiry); "login" is a browser's, issued at login,
    revoked at logout, dead after `expires_at` like the cookie that holds it."""

    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    kind: Mapped[str] = mapped_column(String(8), default="api", server_default="api")
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Klass(Base):
    """A tutor's class ("class" is a Python keyword)."""

    __tablename__ = "classes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    tutor_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[float] = mapped_column(Float)


class Member(Base):
    __tablename__ = "class_members"
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"),
                                          primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True, index=True)


class Source(Base):
    __tablename__ = "sources"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    # deferred: listing sources must not load every upload (up to 20 MB each)
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)


class Shared(Base):
    """A source shared with a class: its members may grade against it."""

    __tablename__ = "class_sources"
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"),
                                          primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"),
                                           primary_key=True, index=True)


class RecallSession(Base):
    __tablename__ = "recall_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    recall_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, index=True)

    sources: Mapped[list[SessionSource]] = relationship(cascade="all, delete-orphan",
                                                        passive_deletes=True)
    job: Mapped[Job] = relationship(cascade="all, delete-orphan", passive_deletes=True,
                                    uselist=False)
    result: Mapped[Result | None] = relationship(cascade="all, delete-orphan",
                                                 passive_deletes=True, uselist=False)
    marks: Mapped[list[PartMark]] = relationship(cascade="all, delete-orphan",
                                                 passive_deletes=True, order_by="PartMark.part")
    weak_points: Mapped[list[WeakPoint]] = relationship(cascade="all, delete-orphan",
                                                        passive_deletes=True)


class SessionSource(Base):
    """The sources a session is graded against (by id; a deleted source drops out)."""

    __tablename__ = "session_sources"
    session_id: Mapped[int] = mapped_column(
        ForeignKey("recall_sessions.id", ondelete="CASCADE"), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"),
                                           primary_key=True, index=True)


class Job(Base):
    """One grading job per session. state: queued → running → graded | failed. A worker
    holds `lease_owner` until `lease_until`; a lease that runs out puts the job back."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("recall_sessions.id", ondelete="CASCADE"), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    enqueued_at: Mapped[float] = mapped_column(Float)
    error: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[float] = mapped_column(Float)


class Result(Base):
    __tablename__ = "results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("recall_sessions.id", ondelete="CASCADE"), unique=True)
    mode: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    graded_markdown: Mapped[str] = mapped_column(Text)
    report_json: Mapped[str] = mapped_column(Text)
    graded_at: Mapped[float] = mapped_column(Float)


class PartMark(Base):
    """One part's mark, for the chart of marks per chapter over time."""

    __tablename__ = "part_marks"
    __table_args__ = (UniqueConstraint("session_id", "part"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("recall_sessions.id", ondelete="CASCADE"), index=True)
    part: Mapped[int] = mapped_column(Integer)
    topic: Mapped[str] = mapped_column(String(300))
    chapter: Mapped[str] = mapped_column(String(40))
    mark: Mapped[str | None] = mapped_column(String(8), nullable=True)


class WeakPoint(Base):
    """A 🟡/🔴 point of a graded session: what a tutor's 'most missed' view counts."""

    __tablename__ = "weak_points"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("recall_sessions.id", ondelete="CASCADE"), index=True)
    mark: Mapped[str] = mapped_column(String(8))
    point: Mapped[str] = mapped_column(String(300), index=True)
