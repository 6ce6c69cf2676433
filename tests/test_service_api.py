"""The grading service's JSON API over a real (per-test) SQLite store, grading with the real
grader against the scripted model over loopback HTTP; jobs run inline (huey immediate)."""

from __future__ import annotations

import json
import threading

import pytest
from fake_openai import FakeOpenAI, Reply
from scripted_model import is_decompose
from service_app import FIXTURES, TUTOR, service
from sqlalchemy import func, inspect, select, text, update

from grader.service import models
from grader.service.db import alembic_config, engine_for, migrate

pytestmark = pytest.mark.timeout(120)


def test_migrating_an_empty_database_reaches_the_models(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = f"sqlite:///{tmp_path / 'blank.sqlite'}"
    migrate(url)
    with engine_for(url).connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), models.Base.metadata) == []
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert set(inspect(conn).get_table_names()) == {
            *models.Base.metadata.tables, "alembic_version"}
    assert alembic_config(url).get_main_option("sqlalchemy.url") == url


def test_a_session_is_graded_off_the_request_and_its_report_cites_passages(tmp_path):
    with FakeOpenAI(TUTOR) as srv:
        svc = service(tmp_path, srv.base_url)
        alice = svc.user("alice")
        src = svc.source(alice)
        made = svc.submit(alice, [src])
        assert made["job"] == {"state": "graded", "attempts": 1, "error": ""}  # inline in tests
        r = svc.client.get(f"/api/sessions/{made['id']}", headers=alice)
    assert r.status_code == 200
    body = r.json()
    assert body["marks"] == ["yellow", "red", None]
    assert body["recall"] == (FIXTURES / "recall-ch14.md").read_text()
    report = body["report"]
    assert report["mode"] == "llm" and report["sources"] == ["cnn-notes.md"]
    wrong = [j for p in report["parts"] for j in p["judgements"] if j["verdict"] == "contradicted"]
    assert [j["correction"] for j in wrong] == ["Pooling layers have no trainable parameters"]
    assert wrong[0]["passage"]["file"] == "cnn-notes.md"
    assert "no trainable parameters" in wrong[0]["passage"]["text"]
    assert [o["point"] for o in report["parts"][0]["omissions"]] == ["zero padding", "stride"]
    md = svc.client.get(f"/api/sessions/{made['id']}/graded.md", headers=alice)
    assert md.headers["content-type"] == "text/markdown; charset=utf-8"
    assert "🔴 => not what the source says" in md.text and "\n=> zero padding" in md.text


def test_an_uploaded_recall_is_decoded_and_graded(tmp_path):
    svc = service(tmp_path)
    alice = svc.user("alice")
    src = svc.source(alice)
    data = (FIXTURES / "recall-ch14.md").read_text().encode("cp1252", errors="replace")
    r = svc.client.post("/api/sessions/upload", headers=alice, data={"source_ids": [src]},
                        files={"file": ("../../etc/ch14.md", data)})
    assert r.status_code == 202, r.text
    assert r.json()["title"] == "ch14" and r.json()["job"]["state"] == "graded"
    bad = svc.client.post("/api/sessions/upload", headers=alice, data={"source_ids": [src]},
                          files={"file": ("ch14.pdf", b"%PDF")})
    assert bad.status_code == 422
    assert bad.json() == {"detail": "'ch14.pdf': upload a .md or .markdown or .txt file",
                          "code": "invalid"}


def test_an_endpoint_that_goes_away_mid_job_fails_it_with_its_message_never_green(tmp_path):
    box: dict[str, FakeOpenAI] = {}

    def script(body):
        if is_decompose(body):
            return TUTOR(body)
        threading.Thread(target=box["srv"].stop).start()  # gone while judging
        return Reply(delay_s=5)

    with FakeOpenAI(script) as srv:
        box["srv"] = srv
        svc = service(tmp_path, srv.base_url)
        alice = svc.user("alice")
        made = svc.submit(alice, [svc.source(alice)])
        assert srv.wait_stopped(5)
    got = svc.client.get(f"/api/sessions/{made['id']}", headers=alice).json()
    assert got["job"]["state"] == "failed" and got["report"] is None and got["marks"] == []
    assert got["job"]["error"] == f"cannot reach {srv.base_url}: connection refused"
    with svc.db() as db:
        assert db.scalar(select(func.count()).select_from(models.Result)) == 0
    # the learner may retry; a failed job is the only kind that is retried
    again = svc.client.post(f"/api/sessions/{made['id']}/retry", headers=alice)
    assert again.status_code == 202 and again.json()["job"]["state"] == "failed"
    assert again.json()["job"]["attempts"] == 2
    done = svc.client.post(f"/api/sessions/{made['id']}/retry", headers=alice)
    assert done.status_code == 202


def test_other_users_data_answers_404_and_classes_share_sources(tmp_path):
    svc = service(tmp_path)
    alice, bob, tina = svc.user("alice"), svc.user("bob"), svc.user("tina", tutor=True)
    src = svc.source(alice)
    made = svc.submit(alice, [src])
    sid = made["id"]
    for method, url in (("GET", f"/api/sessions/{sid}"), ("DELETE", f"/api/sessions/{sid}"),
                        ("GET", f"/api/sessions/{sid}/deck.apkg"),
                        ("GET", f"/api/sessions/{sid}/graded.md"),
                        ("DELETE", f"/api/sources/{src}")):
        r = svc.client.request(method, url, headers=bob)
        assert r.status_code == 404, (method, url)
        assert r.json()["code"] == "not_found"
    r = svc.client.post("/api/sessions", headers=bob, json={"text": "x y z", "source_ids": [src]})
    assert r.json() == {"detail": f"no source {src}", "code": "not_found"}
    assert svc.client.get("/api/sessions", headers=bob).json() == []
    # a learner cannot make a class; a tutor can, adds alice, shares a source with her
    assert svc.client.post("/api/classes", headers=alice, json={"name": "x"}).status_code == 403
    k = svc.client.post("/api/classes", headers=tina, json={"name": "CNN course"}).json()
    assert svc.client.post(f"/api/classes/{k['id']}/members", headers=tina,
                           json={"name": "alice"}).status_code == 201
    tsrc = svc.source(tina, "course-notes.md")
    assert svc.client.post(f"/api/sources/{tsrc}/share", headers=alice,
                           json={"class_id": k["id"]}).status_code == 404
    shared = svc.client.post(f"/api/sources/{tsrc}/share", headers=tina,
                             json={"class_id": k["id"]})
    assert shared.json()["shared_with"] == [k["id"]]
    names = [s["name"] for s in svc.client.get("/api/sources", headers=alice).json()]
    assert names == ["cnn-notes.md", "course-notes.md"]
    assert [s["name"] for s in svc.client.get("/api/sources", headers=bob).json()] == []
    svc.submit(alice, [tsrc], title="with the course notes")
    view = svc.client.get(f"/api/classes/{k['id']}", headers=tina).json()
    assert [m["name"] for m in view["members"]] == ["alice"]
    assert [s["title"] for s in view["sessions"]] == ["with the course notes", "ch14"]
    assert view["most_missed"][0]["learners"] == 1
    assert svc.client.get(f"/api/sessions/{sid}", headers=tina).status_code == 200
    assert svc.client.get(f"/api/classes/{k['id']}", headers=alice).status_code == 404
    assert svc.client.delete(f"/api/sessions/{sid}", headers=tina).status_code == 404
    # the tutor takes alice out: her sessions and the class's sources are hers no more to share
    members = f"/api/classes/{k['id']}/members"
    assert svc.client.delete(f"{members}/alice", headers=alice).status_code == 404
    assert svc.client.delete(f"{members}/alice", headers=tina).status_code == 204
    assert svc.client.get(f"/api/classes/{k['id']}", headers=tina).json()["members"] == []
    assert svc.client.get(f"/api/sessions/{sid}", headers=tina).status_code == 404
    assert svc.client.get(f"/api/sessions/{sid}", headers=alice).status_code == 200
    assert [s["name"] for s in svc.client.get("/api/sources", headers=alice).json()] == [
        "cnn-notes.md"]
    again = svc.client.delete(f"{members}/alice", headers=tina)
    assert again.json() == {"detail": f"alice is not in class {k['id']}", "code": "not_found"}


def test_tokens_are_stored_hashed_and_can_be_revoked(tmp_path):
    from grader.service import crud

    svc = service(tmp_path)
    alice = svc.user("alice")
    token = alice["Authorization"].removeprefix("Bearer ")
    with svc.db() as db:
        row = db.scalars(select(models.Token)).one()
        assert token.split(".")[1] not in row.secret_hash and len(row.secret_hash) == 64
    assert svc.client.get("/api/sessions", headers=alice).status_code == 200
    assert svc.client.get("/api/sessions").json() == {
        "detail": "send 'Authorization: Bearer <token>' (grader user add NAME prints one)",
        "code": "unauthorized"}
    forged = {"Authorization": "Bearer " + token[:-2] + "xx"}
    assert svc.client.get("/api/sessions", headers=forged).json()["detail"] == (
        "the token is unknown or revoked")
    with svc.db() as db:
        assert crud.revoke_tokens(db, crud.user_named(db, "alice")) == 1
    assert svc.client.get("/api/sessions", headers=alice).status_code == 401
    assert svc.client.get("/api/health").json() == {"status": "ok", "database": "ok",
                                                   "version": "0.1.0"}


def test_limits_answer_413_and_429(tmp_path):
    svc = service(tmp_path, max_recall_bytes=2000, max_source_bytes=3000, submissions_per_hour=2)
    alice = svc.user("alice")
    r = svc.client.post("/api/sources", headers=alice, files={"file": ("big.md", b"a" * 3001)})
    assert r.status_code == 413
    assert r.json() == {"detail": "big.md: more than 3000 bytes; a source may be at most 3000 "
                        "bytes", "code": "too_large"}
    r = svc.client.post("/api/sources", headers=alice,
                        files={"file": ("huge.md", b"a" * 1_100_000)})
    assert r.status_code == 413 and r.json()["code"] == "too_large"  # refused before reading
    empty = svc.client.post("/api/sources", headers=alice, files={"file": ("empty.md", b"")})
    assert empty.json() == {"detail": "empty.md: the file is empty", "code": "invalid"}
    src = svc.client.post("/api/sources", headers=alice,
                          files={"file": ("n.md", b"# N\n\nConvolution slides kernels.\n")})
    sid = src.json()["id"]
    long = svc.client.post("/api/sessions", headers=alice,
                           json={"text": "é" * 1001, "source_ids": [sid]})
    assert long.status_code == 413
    assert long.json()["detail"] == ("the recall is 2002 bytes; a session may be at most 2000 "
                                     "bytes")
    ok = {"text": "# Notes\n\nConvolution slides a kernel over the image.\n", "source_ids": [sid]}
    assert svc.client.post("/api/sessions", headers=alice, json=ok).status_code == 202
    assert svc.client.post("/api/sessions", headers=alice, json=ok).status_code == 202
    third = svc.client.post("/api/sessions", headers=alice, json=ok)
    assert third.status_code == 429 and 1 <= int(third.headers["Retry-After"]) <= 3601
    assert third.json()["detail"].startswith("2 submissions an hour at most; try again in ")


def test_deleting_a_session_deletes_everything_derived_from_it(tmp_path):
    with FakeOpenAI(TUTOR) as srv:
        svc = service(tmp_path, srv.base_url)
        alice = svc.user("alice")
        src = svc.source(alice)
        made = svc.submit(alice, [src])
    counts = {}
    with svc.db() as db:
        for t in (models.Job, models.Result, models.PartMark, models.WeakPoint,
                  models.SessionSource):
            counts[t.__tablename__] = db.scalar(select(func.count()).select_from(t))
    assert all(n >= 1 for n in counts.values()), counts
    assert svc.client.delete(f"/api/sessions/{made['id']}", headers=alice).status_code == 204
    with svc.db() as db:
        for t in (models.RecallSession, models.Job, models.Result, models.PartMark,
                  models.WeakPoint, models.SessionSource):
            assert db.scalar(select(func.count()).select_from(t)) == 0, t.__tablename__
        assert db.scalar(select(func.count()).select_from(models.Source)) == 1
    assert svc.client.get(f"/api/sessions/{made['id']}", headers=alice).status_code == 404


def test_the_openapi_schema_and_one_error_shape(tmp_path):
    svc = service(tmp_path)
    schema = svc.client.get("/api/openapi.json").json()
    assert {"/api/sessions", "/api/sessions/{session_id}", "/api/sources",
            "/api/weak-spots.apkg", "/api/classes", "/api/health"} <= set(schema["paths"])
    created = schema["paths"]["/api/sessions"]["post"]["responses"]["202"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("/SessionPublic")
    assert "SessionDetail" in schema["components"]["schemas"]
    assert "/login" not in schema["paths"]
    assert svc.client.get("/api/nothing").json() == {"detail": "Not Found", "code": "not_found"}
    alice = svc.user("alice")
    r = svc.client.post("/api/sessions", headers=alice, json={"text": "x", "source_ids": []})
    assert r.status_code == 422 and r.json()["code"] == "invalid"
    assert r.json()["detail"].startswith("source_ids: ")
    assert json.loads(svc.client.get("/api/sessions/1", headers=alice).text) == {
        "detail": "no session 1", "code": "not_found"}


@pytest.mark.slow
def test_recalled_code_runs_in_the_sandboxed_runner(tmp_path):
    pytest.importorskip("torch")
    svc = service(tmp_path, run_code=True, device="cpu")
    alice = svc.user("alice")
    made = svc.submit(alice, [svc.source(alice)])
    got = svc.client.get(f"/api/sessions/{made['id']}", headers=alice).json()
    report = got["report"]
    if report["code_isolation"].startswith("code not run"):  # no bubblewrap, or not root
        pytest.skip(report["code_isolation"])
    assert report["code_isolation"].startswith("isolation: ")
    run = report["parts"][2]["code"][0]
    assert (run["status"], run["device"]) == ("error", "cpu")
    assert "backwards" in run["detail"]
    assert got["marks"][2] == "red"  # offline, but code that fails is a 🔴 all the same


def test_an_expired_lease_requeues_and_a_job_that_keeps_killing_workers_fails(tmp_path):
    from grader.service import crud

    svc = service(tmp_path)
    alice = svc.user("alice")
    made = svc.submit(alice, [svc.source(alice)])
    with svc.db() as db:
        job = db.scalars(select(models.Job)).one()
        job.state, job.error, job.attempts = "queued", "", 0  # as if never taken
        db.commit()
        assert crud.take_job(db, job.id, "w1", lease_s=60)
        assert not crud.take_job(db, job.id, "w2", lease_s=60)  # held: nobody else takes it
        assert crud.jobs_to_enqueue(db, stale_after_s=60) == []  # a live lease stays
        for attempt in (1, 2):
            db.execute(update(models.Job).values(lease_until=0.0))  # its worker died
            db.commit()
            assert crud.jobs_to_enqueue(db, stale_after_s=60) == [job.id]
            assert crud.take_job(db, job.id, f"w{attempt + 2}", lease_s=60)
        assert not crud.finish_job(db, job.id, "w1", models.Result(), [], [])  # lost lease
        db.execute(update(models.Job).values(lease_until=0.0))
        db.commit()
        assert crud.jobs_to_enqueue(db, stale_after_s=60) == []
        db.refresh(job)
        assert (job.state, job.attempts) == ("failed", 3)
        assert job.error == ("grading stopped 3 times without finishing (the worker died); "
                             "retry, or tell your tutor if it happens again")
    assert svc.client.post(f"/api/sessions/{made['id']}/retry", headers=alice).status_code == 202
