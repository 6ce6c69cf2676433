"""Grading off the request: the huey task, and the job-row lease that makes it safe.

huey (its queue beside the database: transport.py) only carries job ids. The truth is the job row: a
worker takes a job by setting a lease on it (crud.take_job), renews it while grading, and
stores the result only while it still holds it. A worker that dies leaves a lease that runs
out; `requeue()` (the worker's reaper) puts that job back on the queue, so it completes once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ankigen.errors import AnkigenError
from ankigen.model import Mark
from ankigen.text import decode
from grader.grade import GradeOptions, grade_recall
from grader.model import Report, Verdict
from grader.recall import recall_from_text
from grader.sources import SourceSet, load_sources

from . import crud
from .config import Settings
from .db import session_factory
from .models import Job, PartMark, RecallSession, Result, WeakPoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Queue:
    huey: Any  # huey.SqliteHuey or huey.PostgresHuey (transport.py)
    grade: Any  # the task: grade(job_id) enqueues

    def enqueue(self, job_id: int) -> None:
        """Hand the job to the queue. The job row is already committed: if the queue is
        away, the reaper hands it over later (a queued job not enqueued for a lease's
        length), so the learner's submission stands either way."""
        if self.huey.immediate:
            self.grade(job_id)
            return
        for attempt in (1, 2):  # the second on a fresh connection: the first may be stale
            try:
                self.grade(job_id)
                return
            except Exception as exc:  # the broker (the database's queue table) is away
                if attempt == 2:
                    log.warning("job %d: not handed to the queue (%s); the reaper will",
                                job_id, str(exc).splitlines()[0] if str(exc)
                                else type(exc).__name__)


def make_queue(settings: Settings, runner_factory: Callable[[], Any] | None = None) -> Queue:
    """The queue and its one task. The web process only enqueues; the worker process runs
    the consumer. With `immediate` (tests), huey runs the task inline at enqueue."""
    from .transport import make_huey

    huey = make_huey(settings)
    owner = worker_id()

    def grade(job_id: int) -> None:
        run_job(settings, job_id, owner, runner_factory)

    return Queue(huey, huey.task(name="grade")(grade))


def worker_id() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def requeue(settings: Settings, queue: Queue) -> list[int]:
    """Put back jobs whose lease ran out and queued jobs the queue lost; enqueue them."""
    with session_factory(settings.database_url)() as db:
        ids = crud.jobs_to_enqueue(db, stale_after_s=settings.lease_s)
    for job_id in ids:
        log.info("job %d: re-queued (its lease ran out, or the queue lost it)", job_id)
        queue.enqueue(job_id)
    return ids


class _Lease:
    """Renews the job's lease every third of its length until stopped."""

    def __init__(self, settings: Settings, job_id: int, owner: str):
        self.settings, self.job_id, self.owner = settings, job_id, owner
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        every = self.settings.lease_s / 3
        while not self._stop.wait(every):
            try:
                with session_factory(self.settings.database_url)() as db:
                    ok = crud.renew_lease(db, self.job_id, self.owner, self.settings.lease_s)
            except Exception:  # the database is busy or away: try again next beat
                log.exception("job %d: could not renew the lease", self.job_id)
                continue
            if not ok:
                log.warning("job %d: lease lost; its result will not be stored", self.job_id)
                self.lost = True
                return


def run_job(settings: Settings, job_id: int, owner: str,
            runner_factory: Callable[[], Any] | None = None) -> str:
    """Take the job, grade it, store the result (or the failure). Returns what happened."""
    factory = session_factory(settings.database_url)
    with factory() as db:
        if not crud.take_job(db, job_id, owner, settings.lease_s):
            return "skipped"  # done, deleted, or held by a live worker
        job = db.get(Job, job_id)
        assert job is not None
        row = db.get(RecallSession, job.session_id)
        assert row is not None
        text, title, session_id = row.recall_text, row.title, row.id
        sources = [(s.id, s.name, s.content) for s in crud.session_sources(db, row)]
    log.info("job %d (session %d): grading, attempt by %s", job_id, session_id, owner)
    with _Lease(settings, job_id, owner) as lease:
        try:
            report, chapters = grade_text(settings, text, sources, runner_factory)
        except AnkigenError as exc:
            log.info("job %d: failed: %s", job_id, exc)
            with factory() as db:
                crud.fail_job(db, job_id, owner, str(exc))
            return "failed"
        except Exception as exc:  # a bug of ours: the learner sees it failed, can retry
            log.exception("job %d: grading crashed", job_id)
            with factory() as db:
                crud.fail_job(db, job_id, owner,
                              f"the grader crashed ({type(exc).__name__}); retry, or tell "
                              "your tutor if it happens again")
            return "failed"
    if lease.lost:
        return "lost"
    result = Result(session_id=session_id, mode=report.mode, model=report.model,
                    graded_markdown=report.graded_markdown,
                    report_json=json.dumps(report.to_dict(), ensure_ascii=False),
                    graded_at=time.time())
    marks = [PartMark(session_id=session_id, part=p.index, topic=p.topic[:300],
                      chapter=chapters.get(p.index, "")[:40],
                      mark=p.mark.value if p.mark else None) for p in report.parts]
    points = [WeakPoint(session_id=session_id, mark=m, point=pt[:300])
              for m, pt in weak_points(report)]
    with factory() as db:
        stored = crud.finish_job(db, job_id, owner, result, marks, points)
    log.info("job %d (%s): %s", job_id, title, "graded" if stored else "lease lost, dropped")
    return "graded" if stored else "lost"


def grade_text(settings: Settings, text: str, sources: list[tuple[int, str, bytes]],
               runner_factory: Callable[[], Any] | None = None
               ) -> tuple[Report, dict[int, str]]:
    """Grade with the library: the sources as the learner named them, the recall as
    `recall.md`. Returns the report and each part's chapter (for the chart)."""
    recall = recall_from_text(decode(text.encode("utf-8"), "recall.md").text, "recall.md")
    names = _display_names(sources)
    with tempfile.TemporaryDirectory(prefix="grader-job-") as tmp:
        paths = []
        for sid, name, data in sources:
            folder = Path(tmp) / str(sid)
            folder.mkdir()
            (folder / name).write_bytes(data)
            paths.append(folder / name)
        loaded = load_sources(paths)
    shown = {str(p): n for p, n in zip(paths, names)}
    sset = SourceSet(tuple(shown.get(f, f) for f in loaded.files),
                     tuple(replace(p, file=shown.get(p.file, p.file)) for p in loaded.passages),
                     loaded.points)
    report = grade_recall(recall, sset, options(settings), runner_factory)
    chapters = {p.index: p.chapter or "" for p in recall.doc.parts}
    return report, chapters


def _display_names(sources: list[tuple[int, str, bytes]]) -> list[str]:
    """Each source's own name; two of the same name get their ids to tell them apart."""
    seen: dict[str, int] = {}
    for _, name, _ in sources:
        seen[name] = seen.get(name, 0) + 1
    return [f"{sid}-{name}" if seen[name] > 1 else name for sid, name, _ in sources]


def options(settings: Settings) -> GradeOptions:
    endpoint = None
    if settings.base_url and not settings.offline:
        from ankigen.llm import endpoint_from

        endpoint = endpoint_from(settings.base_url, settings.model, timeout_s=settings.timeout_s,
                                 budget_s=settings.budget_s, env={
                                     "OPENAI_API_KEY": settings.api_key.get_secret_value()})
    return GradeOptions(endpoint=endpoint, run_code=settings.run_code, device=settings.device,
                        use_cache=True, cache_path=settings.cache_path)


def weak_points(report: Report) -> list[tuple[str, str]]:
    """(mark, point) for every 🟡/🔴 of a report: the omitted key point, the section a
    contradicted statement is about, or the part's topic for failing code."""
    out: list[tuple[str, str]] = []
    for part in report.parts:
        if part.mark not in (Mark.YELLOW, Mark.RED):
            continue
        mark = part.mark.value
        found = [o.point for o in part.omissions]
        found += [f"{j.passage.section or j.passage.file}" if j.passage else j.claim.text
                  for j in part.judgements if j.verdict is Verdict.CONTRADICTED]
        found += [f"code: {part.topic}" for r in part.code if r.status == "error"]
        out += [(mark, p) for p in dict.fromkeys(found or [part.topic])]
    return out
