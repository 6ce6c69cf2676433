"""A live `grader serve` (its own process, its worker, a free loopback port) grading with
the scripted tutor model, with a tutor, a learner and a shared source: for the browser test
and docs/service_screenshots.py. Stops by itself when the `with` ends."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fake_openai import FakeOpenAI, closed_port
from process_tree import stop
from service_app import FIXTURES, TUTOR

from grader.service import crud
from grader.service.db import migrate, session_factory


@dataclass
class Live:
    base: str
    tokens: dict[str, str]
    class_id: int
    source_id: int


def healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/api/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def live_service(tmp: Path, lifetime_s: float = 170.0) -> Iterator[Live]:
    data = tmp / "store"
    url = f"sqlite:///{(data / 'grader.sqlite').resolve()}"
    migrate(url)
    with session_factory(url)() as db:
        tokens = {name: crud.add_user(db, name, tutor=name == "tina")[1]
                  for name in ("tina", "alice")}
    port = closed_port()
    base = f"http://127.0.0.1:{port}"
    with FakeOpenAI(TUTOR, lifetime_s=lifetime_s) as srv:
        env = {**os.environ, "ANKIGEN_DATA_DIR": str(data), "OPENAI_BASE_URL": srv.base_url,
               "ANKIGEN_MODEL": "scripted"}
        log = (tmp / "serve.log").open("ab")
        proc = subprocess.Popen(
            ["timeout", "-s", "TERM", str(int(lifetime_s)), sys.executable, "-m", "grader.cli",
             "serve", "--port", str(port), "--no-code"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while not healthy(base):
                assert proc.poll() is None and time.monotonic() < deadline, (
                    (tmp / "serve.log").read_text())
                time.sleep(0.1)
            tina = {"Authorization": f"Bearer {tokens['tina']}"}
            k = httpx.post(f"{base}/api/classes", headers=tina, json={"name": "CNN course"})
            kid = k.json()["id"]
            httpx.post(f"{base}/api/classes/{kid}/members", headers=tina, json={"name": "alice"})
            src = httpx.post(f"{base}/api/sources", headers=tina, files={
                "file": ("cnn-notes.md", (FIXTURES / "cnn-notes.md").read_bytes())}).json()
            httpx.post(f"{base}/api/sources/{src['id']}/share", headers=tina,
                       json={"class_id": kid})
            yield Live(base, tokens, kid, src["id"])
        finally:
            stop([proc])
            log.close()
