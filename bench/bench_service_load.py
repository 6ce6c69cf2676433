"""The grading service under load (issue 17 item 4), on loopback, SQLite then PostgreSQL.

Per store: one API process (`grader serve --no-worker`) and `--workers` `grader worker`
processes, offline grading, no code runs; `--sessions` learners each submit one recall at
the same moment (httpx, asyncio). Measured: each submission's latency (request to 202),
and the wall time from the first submission until every job is graded (sessions graded per
minute). Checked: every session is stored, every job graded once, one result each, nothing
failed or left in the queue. PostgreSQL is a throwaway cluster (tests/service_pg.py).

    .venv/bin/python bench/bench_service_load.py [--sessions 50] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fake_openai import closed_port  # noqa: E402
from process_tree import stop  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from grader.service import crud, models  # noqa: E402
from grader.service.db import engine_for, migrate, session_factory  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "service"


def wait_for(what: str, check, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"bench: timed out waiting for {what}")


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "grader.cli", *argv], env=env,
                            stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


async def submit_all(base: str, tokens: list[str], source_ids: list[int], recall: str
                     ) -> list[tuple[int, float, int]]:
    """Every learner submits at once: (status, seconds, session id) each."""
    limits = httpx.Limits(max_connections=len(tokens))
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        async def one(token: str, src: int) -> tuple[int, float, int]:
            t0 = time.perf_counter()
            r = await client.post("/api/sessions", headers={"Authorization": f"Bearer {token}"},
                                  json={"title": "ch14", "text": recall, "source_ids": [src]})
            took = time.perf_counter() - t0
            return r.status_code, took, int(r.json().get("id", 0)) if r.status_code == 202 else 0

        return list(await asyncio.gather(*(one(t, s) for t, s in zip(tokens, source_ids))))


def run_store(name: str, url: str, folder: Path, sessions: int, workers: int) -> dict[str, float]:
    migrate(url)
    factory = session_factory(url)
    tokens, sources = [], []
    notes = (FIXTURES / "cnn-notes.md").read_bytes()
    with factory() as db:
        for i in range(sessions):
            user, token = crud.add_user(db, f"learner{i:03d}")
            sources.append(crud.add_source(db, user, "cnn-notes.md", notes, 20_000_000).id)
            tokens.append(token)
        db.commit()
    env = {**os.environ, "ANKIGEN_DB_URL": url, "ANKIGEN_OFFLINE": "true",
           "ANKIGEN_RUN_CODE": "false", "ANKIGEN_SUBMISSIONS_PER_HOUR": "1000",
           "ANKIGEN_DATA_DIR": str(folder / "api")}
    env.pop("OPENAI_BASE_URL", None)
    port = closed_port()
    base = f"http://127.0.0.1:{port}"
    procs = [start(["serve", "--port", str(port), "--no-worker"], env, folder / "api.log")]
    procs += [start(["worker"], {**env, "ANKIGEN_DATA_DIR": str(folder / f"w{n}")},
                    folder / f"w{n}.log") for n in range(workers)]
    try:
        def up() -> bool:
            try:
                return httpx.get(f"{base}/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for("the API", up, 60)
        time.sleep(2)  # the workers' consumers are listening
        recall = (FIXTURES / "recall-ch14.md").read_text()
        t0 = time.perf_counter()
        answers = asyncio.run(submit_all(base, tokens, sources, recall))

        def done() -> bool:
            with factory() as db:
                left = db.scalar(select(func.count()).select_from(models.Job).where(
                    models.Job.state.in_(("queued", "running"))))
            return left == 0

        wait_for("every job to finish", done, 600)
        wall = time.perf_counter() - t0
        with factory() as db:
            states = dict(db.execute(select(models.Job.state, func.count())
                                     .group_by(models.Job.state)).all())
            results = db.scalar(select(func.count()).select_from(models.Result))
            stored = db.scalar(select(func.count()).select_from(models.RecallSession))
            attempts = db.scalar(select(func.max(models.Job.attempts)))
            queue_left = (db.scalar(text("SELECT count(*) FROM huey_task"))
                          if url.startswith("postgresql") else 0)
    finally:
        stop(procs, timeout_s=20)
        engine_for(url).dispose()
    lat = sorted(t for _, t, _ in answers)
    codes = sorted({c for c, _, _ in answers})
    ok = (codes == [202] and stored == sessions and states == {"graded": sessions}
          and results == sessions and attempts == 1 and queue_left == 0)
    print(f"{name:10} submitted {sessions} at once, {workers} workers: "
          f"HTTP {codes}; stored {stored}, jobs {states}, results {results}, "
          f"max attempts {attempts}, queue left {queue_left} -> "
          f"{'nothing lost' if ok else 'LOST OR DOUBLED'}")
    p50 = statistics.median(lat)
    p95 = lat[max(0, round(0.95 * len(lat)) - 1)]
    rate = sessions / wall * 60
    print(f"{name:10} submit latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
          f"max {lat[-1] * 1000:.0f} ms; all graded in {wall:.1f} s = {rate:.0f} sessions/min")
    if not ok:
        raise SystemExit(1)
    return {"p50": p50, "p95": p95, "rate": rate}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from service_pg import cluster

    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        folder = Path(tmp)
        (folder / "sqlite").mkdir()
        lite = run_store("SQLite", f"sqlite:///{folder / 'sqlite' / 'grader.sqlite'}",
                         folder / "sqlite", args.sessions, args.workers)
        (folder / "pg").mkdir()
        pg = run_store("PostgreSQL", cluster().database(), folder / "pg", args.sessions,
                       args.workers)
    print(f"PostgreSQL / SQLite, same run: p50 {pg['p50'] / lite['p50']:.2f}x, "
          f"p95 {pg['p95'] / lite['p95']:.2f}x, sessions/min {pg['rate'] / lite['rate']:.2f}x")


if __name__ == "__main__":
    main()
