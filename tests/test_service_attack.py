"""The service under attack (issue 17 item 3): schemathesis sends requests generated from the
authenticated OpenAPI schema (a few examples an operation, so the run stays bounded) and no
answer may be a 5xx or break the schema; then the hostile inputs a course's first week
brings, one by one, with the exact answers."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from service_app import FIXTURES, service

pytestmark = pytest.mark.timeout(300)

# What the issue asks: no 5xx, and nothing that breaks the schema (status, body, headers,
# content type). Not positive_data_acceptance: the server rightly refuses schema-valid
# requests on grounds a schema cannot state (an empty upload, a .pdf, an unknown source).
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.status_code_conformance,
          schemathesis.checks.response_schema_conformance,
          schemathesis.checks.content_type_conformance,
          schemathesis.checks.response_headers_conformance,
          schemathesis.checks.ignored_auth]

def test_generated_requests_get_no_5xx_and_answers_that_fit_the_schema(tmp_path):
    """Every operation of the schema, a few generated cases each (derandomized, so a CI run
    is repeatable), sent with a tutor's token over a store with real rows in it; each
    answer checked by schemathesis's default checks (no 5xx, status and body as the schema
    says, content type declared)."""
    from hypothesis import given

    svc = service(tmp_path, submissions_per_hour=1000)
    auth = svc.user("tutor", tutor=True)
    learner = svc.user("alice")
    svc.submit(learner, [svc.source(learner)])
    svc.client.post("/api/classes", headers=auth, json={"name": "ml"})
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", svc.client.app)
    ran: list[str] = []
    for found in schema.get_all_operations():
        op = found.ok()

        @given(case=op.as_strategy())
        @settings(max_examples=6, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(headers=auth, checks=CHECKS)

        check()
        ran.append(op.label)
    assert len(ran) == 19, ran  # every operation of the API was exercised


# --- hostile inputs, one by one ------------------------------------------------------------


def test_upload_names_cannot_climb_out_and_are_kept_as_plain_names(tmp_path):
    svc = service(tmp_path)
    alice = svc.user("alice")
    for hostile in ("../../etc/passwd.md", "..\\..\\boot.ini.md", "/abs/notes.md",
                    "a/../../b.md", "\x00evil.md"):
        r = svc.client.post("/api/sources", headers=alice,
                            files={"file": (hostile, b"# T\n\nsome text\n")})
        assert r.status_code in (201, 422), (hostile, r.text)
        if r.status_code == 201:
            name = r.json()["name"]
            assert "/" not in name and "\\" not in name and ".." not in name, name
            assert "\x00" not in name
    assert not (tmp_path / "etc").exists()


def test_non_utf8_mojibake_and_empty_recalls(tmp_path):
    svc = service(tmp_path)
    alice = svc.user("alice")
    src = svc.source(alice)
    text = (FIXTURES / "recall-ch14.md").read_text()
    latin1 = text.replace("padding", "padding café").encode("latin-1", errors="replace")
    mojibake = text.replace("padding", "padding cafÃ©").encode("utf-8")
    for name, data in (("latin1.md", latin1), ("mojibake.md", mojibake),
                       ("binary.md", bytes(range(256)) * 8)):
        r = svc.client.post("/api/sessions/upload", headers=alice,
                            data={"source_ids": [src]}, files={"file": (name, data)})
        assert r.status_code in (202, 422), (name, r.text)
        assert r.headers["content-type"] == "application/json"
    empty = svc.client.post("/api/sessions/upload", headers=alice, data={"source_ids": [src]},
                            files={"file": ("empty.md", b"")})
    assert empty.status_code == 422
    assert empty.json()["code"] == "invalid"
    zero_source = svc.client.post("/api/sources", headers=alice,
                                  files={"file": ("empty.md", b"")})
    assert zero_source.status_code == 422
    assert zero_source.json()["code"] == "invalid"


def test_a_huge_markdown_is_refused_with_413(tmp_path):
    svc = service(tmp_path, max_recall_bytes=10_000, max_source_bytes=20_000)
    alice = svc.user("alice")
    src = svc.source(alice)
    big = "# Huge\n\n" + "word " * 5_000
    r = svc.client.post("/api/sessions", headers=alice,
                        json={"title": "big", "text": big, "source_ids": [src]})
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    up = svc.client.post("/api/sources", headers=alice,
                         files={"file": ("big.md", ("x" * 30_000).encode())})
    assert up.status_code == 413 and up.json()["code"] == "too_large"
    whole = svc.client.post("/api/sources", headers={**alice, "Content-Length": "99999999"},
                            content=b"x")
    assert whole.status_code == 413


def test_wrong_content_types_are_422_not_5xx(tmp_path):
    svc = service(tmp_path)
    alice = svc.user("alice")
    for headers, body in (({"Content-Type": "text/plain"}, b"hello"),
                          ({"Content-Type": "application/json"}, b"{not json"),
                          ({"Content-Type": "application/xml"}, b"<a/>"),
                          ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x--")):
        r = svc.client.post("/api/sessions", headers={**alice, **headers}, content=body)
        assert r.status_code == 422, (headers, r.status_code, r.text)
        assert r.json()["code"] == "invalid"
    pdf = svc.client.post("/api/sources", headers=alice, files={"file": ("a.pdf", b"%PDF-1.4")})
    assert pdf.status_code == 422


def test_another_users_and_another_class_s_ids_are_404(tmp_path):
    svc = service(tmp_path)
    alice, bob = svc.user("alice"), svc.user("bob")
    tutor, other_tutor = svc.user("t1", tutor=True), svc.user("t2", tutor=True)
    src = svc.source(alice)
    sid = svc.submit(alice, [src])["id"]
    klass = svc.client.post("/api/classes", headers=tutor, json={"name": "ml"}).json()["id"]
    for method, path in (("GET", f"/api/sessions/{sid}"), ("DELETE", f"/api/sessions/{sid}"),
                         ("GET", f"/api/sessions/{sid}/graded.md"),
                         ("GET", f"/api/sessions/{sid}/deck.apkg"),
                         ("POST", f"/api/sessions/{sid}/retry"),
                         ("DELETE", f"/api/sources/{src}")):
        r = svc.client.request(method, path, headers=bob)
        assert r.status_code == 404, (method, path, r.status_code)
        assert r.json()["code"] == "not_found"
    r = svc.client.post("/api/sessions", headers=bob,
                        json={"title": "x", "text": "# a\n\nb\n", "source_ids": [src]})
    assert r.status_code == 404
    assert svc.client.get(f"/api/classes/{klass}", headers=other_tutor).status_code == 404
    assert svc.client.post(f"/api/classes/{klass}/members", headers=other_tutor,
                           json={"name": "bob"}).status_code == 404
    assert svc.client.post(f"/api/sources/{src}/share", headers=alice,
                           json={"class_id": klass}).status_code == 404
    assert svc.client.get(f"/api/sessions/{sid}", headers=alice).status_code == 200


def test_a_revoked_token_is_401(tmp_path):
    from grader.service import crud

    svc = service(tmp_path)
    alice = svc.user("alice")
    assert svc.client.get("/api/sessions", headers=alice).status_code == 200
    with svc.db() as db:
        assert crud.revoke_tokens(db, crud.user_named(db, "alice")) == 1
    r = svc.client.get("/api/sessions", headers=alice)
    assert r.status_code == 401
    assert r.json() == {"detail": "the token is unknown or revoked", "code": "unauthorized"}
    forged = {"Authorization": alice["Authorization"][:-2] + "xx"}
    assert svc.client.get("/api/sessions", headers=forged).status_code == 401


def test_submissions_past_the_hourly_limit_are_429_with_retry_after(tmp_path):
    svc = service(tmp_path, submissions_per_hour=2)
    alice, bob = svc.user("alice"), svc.user("bob")
    src = svc.source(alice)
    svc.submit(alice, [src])
    svc.submit(alice, [src])
    r = svc.client.post("/api/sessions", headers=alice, json={
        "title": "3", "text": (FIXTURES / "recall-ch14.md").read_text(), "source_ids": [src]})
    assert r.status_code == 429 and r.json()["code"] == "too_many_requests"
    assert 0 < int(r.headers["Retry-After"]) <= 3600
    bob_src = svc.source(bob)
    assert svc.client.post("/api/sessions", headers=bob, json={
        "title": "b", "text": "# a\n\nb\n", "source_ids": [bob_src]}).status_code == 202


def test_parallel_submissions_cannot_slip_past_the_hourly_limit(tmp_path):
    """20 submissions of one learner at the same moment to a real server process: exactly
    the limit get through (before the fix 11 did on SQLite and 15 on PostgreSQL of 20 with a
    limit of 5: each request counted before any other had committed)."""
    import asyncio
    import os
    import subprocess
    import sys

    import httpx
    from fake_openai import closed_port
    from process_tree import stop, wait_for
    from service_live import healthy
    from sqlalchemy import func, select

    from grader.service import models

    svc = service(tmp_path, submissions_per_hour=5)
    alice = svc.user("alice")
    src = svc.source(alice)
    port = closed_port()
    env = {**os.environ, "ANKIGEN_DB_URL": svc.settings.database_url,
           "ANKIGEN_DATA_DIR": str(tmp_path / "api"), "ANKIGEN_SUBMISSIONS_PER_HOUR": "5",
           "ANKIGEN_OFFLINE": "true"}
    server = subprocess.Popen([sys.executable, "-m", "grader.cli", "serve", "--no-worker",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("the server", lambda: healthy(base))

        async def burst() -> list[int]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                answers = await asyncio.gather(*(client.post(
                    "/api/sessions", headers=alice,
                    json={"title": f"s{i}", "text": "# a\n\nb\n", "source_ids": [src]})
                    for i in range(20)))
            return sorted(r.status_code for r in answers)

        assert asyncio.run(burst()) == [202] * 5 + [429] * 15
    finally:
        stop([server], timeout_s=30)
    with svc.db() as db:
        assert db.scalar(select(func.count()).select_from(models.RecallSession)) == 5
