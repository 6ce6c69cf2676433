"""`grader user …` and `grader serve`'s settings: one line and a non-zero exit on bad input."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import select

from grader.cli import main
from grader.service import models
from grader.service.db import session_factory


def test_user_add_prints_a_token_once_and_revoke_ends_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.sqlite'}"
    run = CliRunner()
    added = run.invoke(main, ["user", "add", "tina", "--tutor", "--db", url])
    assert added.exit_code == 0, added.output
    token = added.stdout.strip()
    assert len(token.split(".")) == 2 and added.stderr == (
        "grader: added tutor tina; give them the token above (it is not shown again)\n")
    with session_factory(url)() as db:
        user = db.scalars(select(models.User)).one()
        row = db.scalars(select(models.Token)).one()
        assert (user.name, user.is_tutor) == ("tina", True)
        assert token.split(".")[1] not in row.secret_hash and row.revoked_at is None
    again = run.invoke(main, ["user", "add", "tina", "--db", url])
    assert again.exit_code == 1
    assert again.stderr == ("grader: error: user 'tina' already exists (grader user token tina "
                            "gives a new token)\n")
    second = run.invoke(main, ["user", "token", "tina", "--db", url])
    assert second.exit_code == 0 and second.stdout.strip() != token
    revoked = run.invoke(main, ["user", "revoke", "tina", "--db", url])
    assert revoked.exit_code == 0 and revoked.stderr == "grader: revoked 2 token(s) of tina\n"
    bad = run.invoke(main, ["user", "add", "no spaces", "--db", url])
    assert bad.exit_code == 1 and bad.stderr == (
        "grader: error: a user name is 1-64 letters, digits, '.', '_' or '-' (got 'no spaces')\n")
    nobody = run.invoke(main, ["user", "revoke", "bob", "--db", url])
    assert nobody.stderr == "grader: error: no user named 'bob'\n" and nobody.exit_code == 1


def test_the_database_url_comes_from_the_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.sqlite'}"
    monkeypatch.setenv("ANKIGEN_DB_URL", url)
    assert CliRunner().invoke(main, ["user", "add", "alice"]).exit_code == 0
    with session_factory(url)() as db:
        assert [u.name for u in db.scalars(select(models.User))] == ["alice"]


def test_a_bad_setting_is_one_line(tmp_path):
    r = CliRunner().invoke(main, ["serve", "--data-dir", str(tmp_path), "--device", "cuda",
                                  "--port", "99999999999999999999999"])
    assert r.exit_code == 1
    assert r.stderr.startswith("grader: error: setting port: ") and r.stderr.count("\n") == 1
