"""Test helpers for the grading service: a migrated SQLite store per test, an app whose
jobs run inline (huey's immediate mode), users with tokens, and the scripted tutor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from scripted_model import Tutor
from service_pg import store_url

from grader.service import crud
from grader.service.app import create_app
from grader.service.config import Settings
from grader.service.db import migrate, session_factory

FIXTURES = Path(__file__).parent / "fixtures" / "service"
TUTOR = Tutor(wrong={"learns its own weights": "Pooling layers have no trainable parameters"},
              omit={"zero padding": "minor", "stride": "minor"})


@dataclass
class Service:
    settings: Settings
    client: TestClient

    def db(self) -> Any:
        return session_factory(self.settings.database_url)()

    def user(self, name: str, tutor: bool = False) -> dict[str, str]:
        """Adds the user; returns the bearer header."""
        with self.db() as db:
            _, token = crud.add_user(db, name, tutor=tutor)
        return {"Authorization": f"Bearer {token}"}

    def source(self, headers: dict[str, str], name: str = "cnn-notes.md") -> int:
        r = self.client.post("/api/sources", headers=headers,
                             files={"file": (name, (FIXTURES / "cnn-notes.md").read_bytes())})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def submit(self, headers: dict[str, str], source_ids: list[int],
               recall: str = "recall-ch14.md", title: str = "ch14") -> dict[str, Any]:
        r = self.client.post("/api/sessions", headers=headers, json={
            "title": title, "text": (FIXTURES / recall).read_text(), "source_ids": source_ids})
        assert r.status_code == 202, r.text
        out: dict[str, Any] = r.json()
        return out


def service(tmp_path: Path, base_url: str = "", **overrides: Any) -> Service:
    overrides.setdefault("db_url", store_url())  # SQLite, or PostgreSQL on that pass
    overrides.setdefault("run_code", False)  # a test that runs recalled code says so
    settings = Settings(data_dir=tmp_path / "store", immediate=True, base_url=base_url,
                        model="scripted" if base_url else "", timeout_s=5, budget_s=20,
                        **overrides)
    migrate(settings.database_url)
    return Service(settings, TestClient(create_app(settings)))
