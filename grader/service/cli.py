"""`grader serve` and `grader user …`: click only at import; the service loads when they run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ankigen.cli import friendly_for

friendly = friendly_for("grader")


def _settings(**flags: Any) -> Any:
    try:
        import fastapi  # noqa: F401 - the service extra, checked before anything runs
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        from ankigen.errors import AnkigenError

        raise AnkigenError(f"the grading service needs the service extra (pip install -e "
                           f"'.[service]'): {exc}") from None
    from pydantic import ValidationError

    from .config import Settings
    from .errors import Invalid

    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise Invalid(f"setting {where}: {first['msg']}") from None


def db_options(fn: Any) -> Any:
    fn = click.option("--data-dir", type=click.Path(path_type=Path),
                      help="Where the store lives [env: ANKIGEN_DATA_DIR; default: the "
                      "user's data folder].")(fn)
    return click.option("--db", "db_url", help="Database URL, e.g. sqlite:////srv/grader.db "
                        "[env: ANKIGEN_DB_URL; default: SQLite in the data folder].")(fn)


def grading_options(fn: Any) -> Any:
    """How a process grades: the same options for `serve` (its own worker) and `worker`."""
    options = [
        click.option("--base-url", help="OpenAI-compatible endpoint for grading "
                     "[env: OPENAI_BASE_URL]; without one, grading is offline."),
        click.option("--model", help="Model name at that endpoint [env: ANKIGEN_MODEL]."),
        click.option("--offline", is_flag=True, default=None, help="Grade offline even if an "
                     "endpoint is set."),
        click.option("--code/--no-code", "run_code", default=None,
                     help="Run recalled code in the sandboxed check runner [default: on]."),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]),
                     help="Where recalled code runs [default: auto: the GPU when there is one]."),
    ]
    for option in reversed(options):  # decorators apply bottom-up: keep the help's order
        fn = option(fn)
    return fn


@click.command("serve", help="Serve the grading service (web pages and JSON API) with its "
               "grading worker. The first start creates the store.")
@click.option("--host", help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=int, help="Port [default: 8765].")
@db_options
@grading_options
@click.option("--worker/--no-worker", "worker", default=None,
              help="Start a grading worker beside the web process [default: on]; with "
              "--no-worker, `grader worker` processes (on any machine) grade.")
@friendly
def serve_cmd(**flags: Any) -> None:
    from .server import serve

    settings = _settings(**flags)
    click.echo(f"grader: serving on http://{settings.host}:{settings.port} "
               f"(store: {settings.database_url.split('://', 1)[0]}; add users with "
               "`grader user add NAME`)", err=True)
    serve(settings)


@click.command("worker", help="Grade queued sessions until stopped. Run any number, on "
               "any machine that reaches the database (--db postgresql+psycopg://…): each "
               "job is graded once, and a worker that dies leaves its job to another.")
@db_options
@grading_options
@friendly
def worker_cmd(**flags: Any) -> None:
    import logging
    import sys

    from .db import migrate
    from .worker import run

    settings = _settings(**flags)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s worker %(levelname)s %(name)s: %(message)s")
    wait_for_store(lambda: migrate(settings.database_url))  # the first start creates it
    run(settings)


def wait_for_store(step: Any, max_wait_s: float = 30.0) -> None:
    """A worker started while the database is away (a reboot of both, a failover) waits for
    it, logging each try, instead of exiting: supervisors need not know the order."""
    import logging
    import time

    from sqlalchemy.exc import OperationalError

    wait = 1.0
    while True:
        try:
            step()
            return
        except OperationalError as exc:
            logging.getLogger(__name__).warning(
                "the database is not reachable (%s); trying again in %.0f s",
                str(exc.orig).strip().splitlines()[0] if exc.orig else exc, wait)
            time.sleep(wait)
            wait = min(wait * 2, max_wait_s)


@click.group("user", help="Add users, issue and revoke their tokens.")
def user_group() -> None:
    pass


def _db(flags: dict[str, Any]) -> Any:
    from .db import migrate, session_factory

    settings = _settings(**flags)
    migrate(settings.database_url)
    return session_factory(settings.database_url)()


@user_group.command("add", help="Add a user and print their token (shown this once; only "
                    "its hash is stored).")
@click.argument("name")
@click.option("--tutor", is_flag=True, help="A tutor: may create classes and share sources.")
@db_options
@friendly
def user_add(name: str, tutor: bool, **flags: Any) -> None:
    from .crud import add_user

    with _db(flags) as db:
        _, token = add_user(db, name, tutor=tutor)
    click.echo(token)
    click.echo(f"grader: added {'tutor' if tutor else 'learner'} {name}; give them the token "
               "above (it is not shown again)", err=True)


@user_group.command("token", help="Issue a new token for a user (the old ones stay valid "
                    "until revoked).")
@click.argument("name")
@db_options
@friendly
def user_token(name: str, **flags: Any) -> None:
    from .crud import issue_token, user_named

    with _db(flags) as db:
        token = issue_token(db, user_named(db, name))
        db.commit()
    click.echo(token)


@user_group.command("revoke", help="Revoke every token of a user.")
@click.argument("name")
@db_options
@friendly
def user_revoke(name: str, **flags: Any) -> None:
    from .crud import revoke_tokens, user_named

    with _db(flags) as db:
        n = revoke_tokens(db, user_named(db, name))
    click.echo(f"grader: revoked {n} token(s) of {name}", err=True)
