"""`grader serve` as a user runs it: real processes, real HTTP. A `kill -9` of the server in
the middle of grading (the scripted model holds its first answer back), then a restart: the
job's lease runs out, the job is queued again and completes once, with one stored result
and the recall intact. The worker dies with the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fake_openai import FakeOpenAI, Reply, closed_port
from process_tree import alive, descendants, stop, wait_for
from scripted_model import is_decompose
from service_app import FIXTURES, TUTOR
from service_live import healthy
from sqlalchemy import func, select

from grader.service import models
from grader.service.db import session_factory

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "grader.cli", "serve", "--port", str(port),
                             "--no-code"], env=env, stdout=log.open("ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_kill_9_mid_grade_then_restart_grades_the_job_once(tmp_path):
    held = {"n": 0}

    def script(body):
        if is_decompose(body):
            held["n"] += 1
            if held["n"] == 1:
                return Reply(delay_s=60)  # still "thinking" when the server is killed
        return TUTOR(body)

    data = tmp_path / "store"
    port = closed_port()
    base = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    with FakeOpenAI(script, lifetime_s=150) as srv:
        env = {**os.environ, "ANKIGEN_DATA_DIR": str(data), "OPENAI_BASE_URL": srv.base_url,
               "ANKIGEN_MODEL": "scripted", "ANKIGEN_LEASE_S": "2", "ANKIGEN_REAP_EVERY_S": "0.3",
               "ANKIGEN_TIMEOUT_S": "90", "ANKIGEN_BUDGET_S": "120"}
        add = subprocess.run([sys.executable, "-m", "grader.cli", "user", "add", "alice"],
                             env=env, capture_output=True, text=True, timeout=60, check=True)
        token = add.stdout.strip()
        assert add.stderr == ("grader: added learner alice; give them the token above (it is "
                              "not shown again)\n")
        auth = {"Authorization": f"Bearer {token}"}
        try:
            first = serve(env, port, tmp_path / "serve.log")
            procs.append(first)
            wait_for("the server", lambda: healthy(base))
            src = httpx.post(f"{base}/api/sources", headers=auth, files={
                "file": ("cnn-notes.md", (FIXTURES / "cnn-notes.md").read_bytes())}).json()
            recall = (FIXTURES / "recall-ch14.md").read_text()
            made = httpx.post(f"{base}/api/sessions", headers=auth, json={
                "title": "ch14", "text": recall, "source_ids": [src["id"]]})
            assert made.status_code == 202 and made.json()["job"]["state"] == "queued"
            sid = made.json()["id"]

            def state():
                return httpx.get(f"{base}/api/sessions/{sid}", headers=auth).json()["job"]

            wait_for("grading to start", lambda: held["n"] == 1 and state()["state"] == "running")
            below = descendants(first.pid)
            assert below, "the worker runs in a process of its own"
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
            wait_for("the worker to die with the server",
                     lambda: not any(alive(p) for p in below), timeout_s=10)
            factory = session_factory(f"sqlite:///{(data / 'grader.sqlite').resolve()}")
            with factory() as db:
                job = db.scalars(select(models.Job)).one()
                assert (job.state, job.attempts) == ("running", 1)
                assert db.get(models.RecallSession, sid).recall_text == recall

            second = serve(env, port, tmp_path / "serve.log")
            procs.append(second)
            wait_for("the server again", lambda: healthy(base))
            done = wait_for("the job to be graded",
                            lambda: (s := state())["state"] in ("graded", "failed") and s)
            assert done == {"state": "graded", "attempts": 2, "error": ""}
            got = httpx.get(f"{base}/api/sessions/{sid}", headers=auth).json()
            assert got["recall"] == recall and got["marks"] == ["yellow", "red", None]
            with factory() as db:
                assert db.scalar(select(func.count()).select_from(models.Result)) == 1
                assert db.scalar(select(func.count()).select_from(models.Job)) == 1
            assert held["n"] == 2  # the killed attempt's question, and the one that finished
            log = (tmp_path / "serve.log").read_text()
            assert "job 1: re-queued (its lease ran out, or the queue lost it)" in log
        finally:
            stop(procs)
