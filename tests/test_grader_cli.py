"""`grader` on the command line: what it writes, and one exact line for each bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_openai import FakeOpenAI, closed_port
from scripted_model import Tutor

from ankigen.cli import main as ankigen_main
from grader.cli import main

pytestmark = pytest.mark.timeout(60)
FIXTURES = Path(__file__).parent / "fixtures" / "grader"
OFFLINE_NOTE = ("grader: offline: no model endpoint is set (--base-url or OPENAI_BASE_URL), so "
                "statements are checked for coverage only and no part gets 🟢\n")


@pytest.fixture
def work(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANKIGEN_MODEL"):
        monkeypatch.delenv(name, raising=False)
    shutil.copy(FIXTURES / "recall.md", tmp_path / "recall.md")
    shutil.copytree(FIXTURES / "sources", tmp_path / "sources")
    return tmp_path


def grader(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env=env)


def nothing_written(work: Path) -> None:
    assert not (work / "graded.md").exists() and not (work / "report.json").exists()
    assert not list(work.glob(".*.tmp"))


def test_offline_grade_writes_graded_notes_and_report(work):
    r = grader("grade", "recall.md", "-s", "sources", "-o", "graded.md", "--report",
               "report.json", "--no-code")
    assert r.exit_code == 0, r.output
    assert r.stderr == OFFLINE_NOTE + "wrote graded.md: `ankigen build graded.md` makes its cards\n"
    assert "3 part(s) graded offline against 2 source file(s)" in r.stdout
    assert "🟡 part 1 (lines 7-7): Convolutional neural networks" in r.stdout
    assert "∅ left out: zero padding (sources/cnn-notes.md:9)" in r.stdout
    report = json.loads((work / "report.json").read_text())
    assert report["mode"] == "offline" and [p["mark"] for p in report["parts"]] == [
        "yellow", None, None]
    claim = report["parts"][1]["judgements"][2]
    assert claim["verdict"] == "not_in_source"
    assert claim["claim"]["line"] == 13 and claim["passage"]["file"] == "sources/history.txt"
    graded = (work / "graded.md").read_text()
    assert graded.startswith((work / "recall.md").read_text().split("\n---")[0].rstrip())
    # The learning loop closes: ankigen turns the graded session into cards.
    b = CliRunner().invoke(ankigen_main, ["build", "graded.md", "-o", "out/weak.apkg", "--json"])
    assert b.exit_code == 0, b.output
    points = len(report["parts"][0]["omissions"])
    # One card per omitted point (docs/cards.md); the failing code's wrong name may add one.
    assert json.loads(b.stdout)["by_mark"]["yellow"] == points == 2


def test_json_prints_the_report_on_stdout(work):
    r = grader("grade", "recall.md", "-s", "sources", "--json", "--no-code")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["sources"] == ["sources/cnn-notes.md", "sources/history.txt"]
    assert data["parts"][0]["omissions"][0]["point"] == "zero padding"
    nothing_written(work)


def test_graded_with_a_model_from_the_environment(work):
    tutor = Tutor(wrong={"learns its own weights": "Pooling layers have no trainable parameters"})
    with FakeOpenAI(tutor) as srv:
        env = {"OPENAI_BASE_URL": srv.base_url, "ANKIGEN_MODEL": "scripted"}
        r = grader("grade", "recall.md", "-s", "sources", "-o", "graded.md", "--no-code", env=env)
        assert r.exit_code == 0, r.output
        assert srv.completions == 2
    assert "graded with scripted" in r.stdout and "model: 2 calls, 0 cache hits" in r.stdout
    assert "✗ line 11: A max pooling layer learns its own weights" in r.stdout
    assert "🔴 => not what the source says: Pooling layers have no trainable parameters" in \
        (work / "graded.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["nope.md", "-s", "sources"], "nope.md: no such file or directory"),
    (["recall.md", "-s", "nope.md"], "nope.md: no such file or directory"),
    (["recall.md", "-s", "sources/slides.pdf"],
     "sources/slides.pdf: not a source we read (expected .md or .txt, got .pdf)"),
    (["recall.md", "-s", "empty.md"], "empty.md: empty source: no text to grade against"),
    (["headings.md", "-s", "sources"], "headings.md: empty recall: no sentences or code to grade"),
    (["recall.md", "-s", "nothing"], "nothing: no .md or .txt files in this folder"),
])
def test_bad_input_is_one_line_and_writes_nothing(work, args, message):
    (work / "sources" / "slides.pdf").write_bytes(b"%PDF-1.4")
    (work / "empty.md").write_text("\n\n")
    (work / "headings.md").write_text("# Goal\n\n# Notes\n\n---\n")
    (work / "nothing").mkdir()
    r = grader("grade", *args, "-o", "graded.md", "--no-code", "--offline")
    assert r.exit_code == 1
    assert r.stderr.splitlines()[-1] == f"grader: error: {message}"
    nothing_written(work)


def test_an_unreachable_endpoint_is_one_line(work):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    r = grader("grade", "recall.md", "-s", "sources", "-o", "graded.md", "--no-code",
               "--base-url", url, "--model", "m", "--budget", "3")
    assert r.exit_code == 1
    assert r.stderr == f"grader: error: cannot reach {url}: connection refused\n"
    nothing_written(work)


def test_an_invalid_key_is_one_line_and_the_key_is_never_shown(work):
    with FakeOpenAI(Tutor(), api_key="sk-the-right-one") as srv:
        env = {"OPENAI_API_KEY": "sk-a-wrong-one"}
        r = grader("grade", "recall.md", "-s", "sources", "-o", "graded.md", "--no-code",
                   "--base-url", srv.base_url, "--model", "m", env=env)
        assert len(srv.requests) == 1
    assert r.exit_code == 1
    assert r.stderr == (f"grader: error: {srv.base_url} refused the API key (401): check "
                        "OPENAI_API_KEY\n")
    assert "sk-a-wrong-one" not in r.output
    nothing_written(work)


def test_an_endpoint_without_a_model_is_one_line(work):
    r = grader("grade", "recall.md", "-s", "sources", "--base-url", "http://127.0.0.1:9/v1")
    assert r.exit_code == 1
    assert r.stderr == ("grader: error: an endpoint is set (http://127.0.0.1:9/v1) but no "
                        "model: pass --model or set ANKIGEN_MODEL\n")


def test_an_unwritable_output_is_one_line(work):
    (work / "blocker").write_text("a file where a folder should be")
    r = grader("grade", "recall.md", "-s", "sources", "-o", "blocker/graded.md", "--no-code")
    assert r.exit_code == 1
    assert r.stderr.splitlines()[-1] == "grader: error: blocker/graded.md: cannot write: blocker is not a folder"
    nothing_written(work)


def test_every_command_has_help():
    for command in ("grade", "eval"):
        r = grader(command, "--help")
        assert r.exit_code == 0 and len(r.stdout) > 200
