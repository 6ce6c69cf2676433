"""The engine (SQLite in WAL mode by default) and migrations to head (alembic)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

ALEMBIC_DIR = Path(__file__).parent / "alembic"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    # WAL: readers never wait on the grader's writes; foreign keys so deletes cascade.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


@functools.cache
def engine_for(url: str) -> Engine:
    """One engine per URL and process (engines pool connections; make one, share it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(url), expire_on_commit=False)


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


SCHEMA_LOCK = 0x616E6B69  # any fixed key: the processes of one service agree on it


@contextmanager
def schema_lock(url: str) -> Iterator[None]:
    """On PostgreSQL, one process at a time changes the schema: API processes and workers
    that start together would otherwise race `CREATE TABLE` (issue 17). SQLite: a no-op
    (one machine; its writes are serialised already)."""
    if make_url(url).get_backend_name() != "postgresql":
        yield
        return
    with engine_for(url).connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCHEMA_LOCK})
            conn.commit()


def migrate(url: str) -> None:
    """Bring the database to the newest schema (creating it on first start)."""
    from alembic import command

    with schema_lock(url):
        command.upgrade(alembic_config(url), "head")
