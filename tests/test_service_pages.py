"""The server-rendered pages through TestClient: login cookie, CSRF on every form, learner
text escaped, HTML error pages, the chart. (tests/test_service_browser.py drives Chromium.)"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from service_app import FIXTURES, service

from grader.service.app import create_app

pytestmark = pytest.mark.timeout(120)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "every form carries a CSRF token"
    return m.group(1)


def log_in(client: TestClient, headers: dict[str, str]) -> str:
    page = client.get("/login")
    token = headers["Authorization"].removeprefix("Bearer ")
    r = client.post("/login", data={"token": token, "csrf": csrf_of(page.text)},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    return r.headers["set-cookie"]


def token_in(cookie: str) -> str:
    m = re.search(r"ankigen_token=([^;]+)", cookie)
    assert m, cookie
    return m.group(1)


def test_login_sets_a_strict_httponly_cookie_and_pages_need_it(tmp_path):
    svc = service(tmp_path)
    alice = svc.user("alice")
    r = svc.client.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    cookie = log_in(svc.client, alice)
    assert "ankigen_token=" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie and "Secure" not in cookie
    home = svc.client.get("/")
    assert home.status_code == 200 and "Submit a recall session" in home.text
    assert "script-src" not in home.headers["content-security-policy"]  # none may run
    assert home.headers["content-security-policy"].startswith("default-src 'none'")
    bad = svc.client.post("/login", data={"token": "0123456789abcdef.nope",
                                          "csrf": csrf_of(home.text)})
    assert bad.status_code == 401 and "That token is unknown or revoked." in bad.text


def test_logout_revokes_the_browser_login_but_not_the_api_token(tmp_path):
    svc = service(tmp_path)
    alice = svc.user("alice")
    cookie = log_in(svc.client, alice)
    browser_token = token_in(cookie)
    assert browser_token != alice["Authorization"].removeprefix("Bearer ")
    home = svc.client.get("/")
    out = svc.client.post("/logout", data={"csrf": csrf_of(home.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    # A copy of the cookie kept from before the logout (another tab, a stolen one) is dead.
    svc.client.cookies.set("ankigen_token", browser_token)
    again = svc.client.get("/", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/login"
    assert svc.client.get("/api/sessions", headers=alice).status_code == 200


def test_a_login_token_expires_and_a_new_login_ends_the_last(tmp_path):
    from grader.service import models

    svc = service(tmp_path)
    alice = svc.user("alice")
    first = token_in(log_in(svc.client, alice))
    second = token_in(log_in(svc.client, alice))
    assert svc.client.get("/api/sessions", headers={"Authorization": f"Bearer {first}"}
                          ).status_code == 401  # logging in again revoked the first login
    with svc.db() as db:
        row = db.get(models.Token, second.split(".")[0])
        assert row is not None and row.kind == "login" and row.expires_at is not None
        row.expires_at = 1.0  # its 30 days are over
        db.commit()
    gone = svc.client.get("/", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/login"


def test_logout_with_an_api_token_in_the_cookie_leaves_the_token_alone(tmp_path):
    """A cookie set before logins had tokens of their own holds the API token itself."""
    svc = service(tmp_path)
    alice = svc.user("alice")
    svc.client.cookies.set("ankigen_token", alice["Authorization"].removeprefix("Bearer "))
    home = svc.client.get("/")
    assert home.status_code == 200
    svc.client.post("/logout", data={"csrf": csrf_of(home.text)}, follow_redirects=False)
    assert svc.client.get("/api/sessions", headers=alice).status_code == 200


def test_over_https_the_cookie_is_secure(tmp_path):
    svc = service(tmp_path)
    alice = svc.user("alice")
    client = TestClient(create_app(svc.settings), base_url="https://testserver")
    assert "Secure" in log_in(client, alice)


def test_forms_without_the_csrf_token_are_refused_with_an_html_page(tmp_path):
    svc = service(tmp_path)
    alice = svc.user("alice")
    log_in(svc.client, alice)
    src = svc.source(alice)
    r = svc.client.post("/sessions", data={"text": "x", "source_ids": [src], "csrf": "forged"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "this form has expired; reload the page and send it again" in r.text
    missing = svc.client.get("/sessions/42")
    assert missing.status_code == 404 and "no session 42" in missing.text
    assert missing.headers["content-type"].startswith("text/html")


def test_learner_text_is_escaped_and_marks_and_chart_show(tmp_path):
    svc = service(tmp_path)
    alice = svc.user("alice")
    log_in(svc.client, alice)
    src = svc.source(alice)
    home = svc.client.get("/")
    recall = (FIXTURES / "recall-ch14-again.md").read_text()
    r = svc.client.post("/sessions", data={"title": "<b>mine</b>", "text": recall,
                                           "source_ids": [src], "csrf": csrf_of(home.text)},
                        follow_redirects=False)
    assert r.status_code == 303
    page = svc.client.get(r.headers["location"])
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(&#34;pwned&#34;)" in page.text
    assert "<b>mine</b>" not in page.text and "&lt;b&gt;mine&lt;/b&gt;" in page.text
    assert 'class="state" id="state">graded<' in page.text
    assert 'class="mark yellow"' in page.text
    home = svc.client.get("/")
    assert '<svg class="chart"' in home.text and "chapter 14" in home.text
    assert "/weak-spots.apkg" in home.text
    deck = svc.client.get("/weak-spots.apkg")
    assert deck.status_code == 200 and deck.headers["content-type"] == "application/apkg"


def test_a_tutor_sees_the_class_view(tmp_path):
    svc = service(tmp_path)
    tina, alice = svc.user("tina", tutor=True), svc.user("alice")
    src = svc.source(tina)
    k = svc.client.post("/api/classes", headers=tina, json={"name": "CNN course"}).json()
    svc.client.post(f"/api/classes/{k['id']}/members", headers=tina, json={"name": "alice"})
    svc.client.post(f"/api/sources/{src}/share", headers=tina, json={"class_id": k["id"]})
    svc.submit(alice, [src])
    log_in(svc.client, tina)
    view = svc.client.get(f"/classes/{k['id']}")
    assert view.status_code == 200
    assert "Most missed" in view.text and "alice" in view.text and "of 1</td>" in view.text
    assert 'aria-label="Remove alice from CNN course"' in view.text
    gone = svc.client.post(f"/classes/{k['id']}/members/remove",
                           data={"name": "alice", "csrf": csrf_of(view.text)},
                           follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == f"/classes/{k['id']}"
    after = svc.client.get(f"/classes/{k['id']}")
    assert "Learners (0)" in after.text and "Remove alice" not in after.text


def test_the_chart_draws_one_line_per_chapter_over_sessions():
    from grader.service.chart import svg
    from grader.service.crud import ChartPoint

    points = [ChartPoint(1, 10.0, "chapter 14", "red"), ChartPoint(1, 10.0, "chapter 14", "green"),
              ChartPoint(2, 20.0, "chapter 14", "green"), ChartPoint(2, 20.0, "<b>x</b>", "yellow"),
              ChartPoint(3, 30.0, "chapter 9", None)]
    out = svg(points)
    assert out.count("<polyline") == 2 and "latest (2 sessions)" in out
    # chapter 14: (red + green) / 2 = 1 at the first session, green = 2 at the last
    assert 'points="46.0,68.0 312.0,10.0"' in out
    assert "&lt;b&gt;x&lt;/b&gt;" in out and "<b>" not in out
    assert svg([ChartPoint(1, 1.0, "chapter 9", None)]) == ""


def test_pages_upload_a_recall_and_a_source_and_a_tutor_shares_it(tmp_path):
    svc = service(tmp_path)
    tina, alice = svc.user("tina", tutor=True), svc.user("alice")
    tutor = TestClient(create_app(svc.settings))
    log_in(tutor, tina)
    csrf = csrf_of(tutor.get("/").text)
    made = tutor.post("/classes", data={"name": "CNN course", "csrf": csrf},
                      follow_redirects=False)
    assert made.status_code == 303
    class_url = made.headers["location"]
    assert tutor.post(f"{class_url}/members", data={"name": "alice", "csrf": csrf},
                      follow_redirects=False).status_code == 303
    up = tutor.post("/sources", data={"csrf": csrf}, follow_redirects=False, files={
        "file": ("cnn-notes.md", (FIXTURES / "cnn-notes.md").read_bytes())})
    assert up.status_code == 303
    page = tutor.get(class_url).text
    share = re.search(r'formaction="(/sources/\d+/share)"', page)
    assert share, "an unshared source offers a share button"
    class_id = class_url.rsplit("/", 1)[1]
    assert tutor.post(share.group(1), data={"csrf": csrf, "class_id": class_id},
                      follow_redirects=False).status_code == 303
    assert "(shared)" in tutor.get(class_url).text
    log_in(svc.client, alice)
    home = svc.client.get("/").text
    assert "cnn-notes.md" in home and "(shared by tina)" in home
    src = re.search(r'name="source_ids" value="(\d+)"', home).group(1)
    r = svc.client.post("/sessions", data={"csrf": csrf_of(home), "source_ids": [src]},
                        files={"file": ("Chapter 14.md",
                                        (FIXTURES / "recall-ch14.md").read_bytes())},
                        follow_redirects=False)
    assert r.status_code == 303
    page = svc.client.get(r.headers["location"]).text
    assert "<h1>Chapter 14</h1>" in page and 'id="state">graded<' in page
