"""A throwaway PostgreSQL cluster for the service tests (issue 17).

The service tests run once on SQLite and, with `ANKIGEN_TEST_DB=postgresql` (make test's
second pass), once on PostgreSQL: `service_app.service()` then gives each test a database of
its own, copied from a template migrated to head. The cluster is Debian's PostgreSQL, started
by the first test that needs it (initdb into a temporary folder, a free loopback port, trust
auth on 127.0.0.1 only) and stopped when the test process exits. PostgreSQL refuses to run
as root, so as root it runs as the `postgres` user.

Without PostgreSQL a test that needs it is skipped with the reason, except in CI (CI=true),
where that is a failure: the PostgreSQL pass never passes by running nothing.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fake_openai import closed_port

from grader.service.db import engine_for, migrate

ENV = "ANKIGEN_TEST_DB"


def backend() -> str:
    """The store the service tests use: sqlite (default) or postgresql."""
    value = os.environ.get(ENV, "sqlite") or "sqlite"
    if value not in ("sqlite", "postgresql"):
        raise ValueError(f"{ENV}={value!r}: sqlite or postgresql")
    return value


def _bin_dir() -> Path | None:
    """Where initdb and pg_ctl are; ANKIGEN_TEST_PG_BIN names the folder (the test of the
    CI rule points it at one without them)."""
    if "ANKIGEN_TEST_PG_BIN" in os.environ:
        named = Path(os.environ["ANKIGEN_TEST_PG_BIN"])
        return named if (named / "initdb").exists() else None
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class Cluster:
    bin_dir: Path
    data: Path
    port: int
    user: str | None  # run the server as this user (we are root), else as ourselves
    dbs: list[str] = field(default_factory=list)
    template: str = ""

    def _run(self, *argv: str, timeout_s: float = 60) -> None:
        cmd = [str(self.bin_dir / argv[0]), *argv[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()}")

    def start(self) -> None:
        opts = (f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=300")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"),
                  "-o", opts, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql)

    def database(self) -> str:
        """A new database migrated to head (a copy of the template): its SQLAlchemy URL.
        The previous tests' engines let go of their connections first."""
        if not self.template:
            self.template = "t_template"
            self._admin(f"CREATE DATABASE {self.template}")
            migrate(self.url(self.template))
            engine_for(self.url(self.template)).dispose()
        for old in self.dbs:
            engine_for(self.url(old)).dispose()
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._admin(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        self.dbs.append(name)
        return self.url(name)


_cluster: Cluster | None = None


def cluster() -> Cluster:
    """The process's cluster, started on first use; skipped without PostgreSQL (failed in CI)."""
    global _cluster
    if _cluster is not None:
        return _cluster
    bin_dir = _bin_dir()
    if bin_dir is None:
        why = "PostgreSQL is not installed (apt-get install postgresql)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{why}; CI must run the PostgreSQL pass", pytrace=False)
        pytest.skip(why)
    user = None
    data = Path(tempfile.mkdtemp(prefix="ankigen-pg-"))
    if os.geteuid() == 0:
        user = "postgres"
        entry = pwd.getpwnam(user)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    made = Cluster(bin_dir, data, closed_port(), user)
    made._run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
              "--locale=C.UTF-8", "--no-sync", timeout_s=120)
    made.start()
    atexit.register(_stop, made)
    _cluster = made
    return made


def _stop(c: Cluster) -> None:
    try:
        c.stop("immediate")
    except (RuntimeError, subprocess.TimeoutExpired, OSError):
        pass
    shutil.rmtree(c.data, ignore_errors=True)


def store_url() -> str:
    """"" (SQLite in the test's data folder) or a fresh PostgreSQL database, by `backend()`."""
    return cluster().database() if backend() == "postgresql" else ""
