"""Which huey storage carries job ids: the queue lives beside the database.

SQLite (one machine): huey's SqliteHuey in a file next to the store. PostgreSQL (many
machines): huey's PostgresHuey in the same database (or `queue_url`'s), so every API
process and every `grader worker` that reaches the database shares one queue, with no
other server to run. Either way the queue only carries ids; the job row's lease is the truth
(jobs.py), so a queue entry lost to a restart is re-queued by the reaper, never graded twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import make_url

from .config import Settings
from .db import schema_lock
from .errors import Invalid

QUEUE_NAME = "ankigen-grader"


def libpq_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL (`postgresql+psycopg://…`) as libpq takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def queue_backend(settings: Settings) -> str:
    url = settings.queue_url or settings.database_url
    backend = make_url(url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise Invalid(f"setting queue_url: {backend!r} is not a queue this service runs on; "
                      "use the database's (sqlite or postgresql)")
    return backend


def make_huey(settings: Settings) -> Any:
    """The huey instance; with `immediate` (tests) it runs each task inline at enqueue."""
    if queue_backend(settings) == "postgresql" and not settings.immediate:
        from huey import PostgresHuey

        url = settings.queue_url or settings.database_url
        # read_timeout: how long one LISTEN waits before the consumer looks again
        huey = PostgresHuey(QUEUE_NAME, dsn=libpq_dsn(url), results=False, read_timeout=1,
                            connect_timeout=10, create_tables=False)
        # huey's CREATE TABLE IF NOT EXISTS races when two processes start at once (one
        # dies with a duplicate pg_type): create its tables under the schema lock
        with schema_lock(url):
            huey.storage.initialize_schema()
        return huey
    from huey import SqliteHuey

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(QUEUE_NAME, filename=str(settings.queue_path),
                      immediate=settings.immediate, results=False)
