"""Honest check results against a hostile notes author (issue 10: items 2, 7, 11, 12, 13,
the caller's side): no sandbox, no run; caches that cannot be shared by a look-alike note;
no escape sequence reaches a terminal or a card; claims compared exactly; exit codes that
say what happened. Attacks go through the real `ankigen` and `grader` commands."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from anki.collection import Collection
from click.testing import CliRunner

pytest.importorskip("torch")
from anki_helpers import import_apkg, rendered  # noqa: E402

import ankigen.checks.keeper as keeper_module  # noqa: E402
from ankigen.checks.sandbox import OPT_OUT_FLAG, UNSANDBOXED  # noqa: E402
from ankigen.cli import main  # noqa: E402
from ankigen.errors import SandboxUnavailable  # noqa: E402
from ankigen.text import clean, reveal  # noqa: E402
from grader.cli import main as grader_main  # noqa: E402

HOSTILE = Path(__file__).parent / "fixtures" / "checks" / "hostile"
FIXTURES = Path(__file__).parent / "fixtures"
ANKIGEN = Path(sys.executable).parent / "ankigen"
REFUSED = ("checks not run: bubblewrap is not installed; install bubblewrap (apt-get install "
           f"bubblewrap), or pass {OPT_OUT_FLAG} to run them unsandboxed (only for notes you "
           "trust)")


def _text(h: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", h.split("</style>")[-1]))


def _vault(tmp_path: Path, *names: str, folder: Path = HOSTILE) -> Path:
    vault = tmp_path / "vault"
    vault.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(folder / name, vault / Path(name).name)
    return vault


def _cards(tmp_path: Path, apkg: Path, name: str = "c") -> list[tuple[str, str]]:
    """(question, answer) texts of every card, as Anki renders them after importing it into
    a new collection."""
    col = Collection(str(tmp_path / f"{name}.anki2"))
    try:
        import_apkg(col, apkg)
        return [(_text(q), _text(a)) for _, q, a in rendered(col)]
    finally:
        col.close()


def ankigen(*args: str, **kw: object):
    return CliRunner().invoke(main, list(args), **kw)  # type: ignore[arg-type]


class _NoSandbox:
    """What open_runner starts, on a machine without bubblewrap: it refuses."""

    def __init__(self, **kw: object) -> None:
        if not kw.get("unsandboxed"):
            raise SandboxUnavailable(REFUSED)
        raise AssertionError("the opt-out is not under test here")


# --- item 2, caller side: no sandbox, nothing runs, and everything says so -----------------

def test_check_refuses_with_one_line_and_exit_5(tmp_path, monkeypatch):
    monkeypatch.setattr(keeper_module, "Runner", _NoSandbox)
    note = tmp_path / "ref.md"
    shutil.copy(FIXTURES / "checks" / "reference-claims.md", note)
    r = ankigen("check", str(note))
    assert r.exit_code == 5
    assert r.stdout == ""
    assert r.stderr.splitlines()[-1] == f"ankigen: error: {REFUSED}"
    assert "verified" not in r.output and "contradicted" not in r.output


def test_check_without_bwrap_on_path_refuses_through_the_real_runner(tmp_path):
    """No monkeypatching: the installed runner finds no bubblewrap and runs nothing."""
    bare = tmp_path / "bin"
    bare.mkdir()
    note = tmp_path / "ref.md"
    shutil.copy(FIXTURES / "checks" / "reference-claims.md", note)
    env = {**os.environ, "PATH": str(bare)}
    p = subprocess.run([str(ANKIGEN), "check", str(note)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 5, p.stderr
    assert p.stdout == ""
    assert p.stderr.strip().splitlines()[-1] == f"ankigen: error: {REFUSED}"


def test_build_without_a_sandbox_completes_says_not_run_and_reruns_once_it_has_one(
        tmp_path, monkeypatch):
    vault = _vault(tmp_path, "recall-pytorch-training.md", folder=FIXTURES / "checks")
    out = tmp_path / "deck.apkg"
    bare = tmp_path / "bin"
    bare.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keeper_module, "Runner", _NoSandbox)
        mp.setenv("PATH", str(bare))  # bubblewrap is not to be found: the build's key says so
        r = ankigen("build", str(vault), "-o", str(out))
    assert r.exit_code == 0, r.output
    line = r.stdout.splitlines()[1]
    assert line.endswith(
        "checks: not run: bubblewrap is not installed; install bubblewrap (apt-get install "
        f"bubblewrap), or pass {OPT_OUT_FLAG} to run them unsandboxed (only for notes you "
        "trust); 10 PyTorch calls in recall notes not looked up, so no card for a wrong name"
    ), line
    cards = _cards(tmp_path, out)
    wrong = next(a for q, a in cards if "what is wrong with this line" in q)
    assert "not run" in wrong and f"Not run when this deck was built: {REFUSED}" in wrong
    assert "ran cleanly" not in wrong and "AttributeError" not in wrong.split("not run")[-1]

    # bubblewrap is back: the same vault is not "up to date", its checks run now
    again = ankigen("build", str(vault), "-o", str(out))
    assert again.exit_code == 0, again.output
    assert "up to date" not in again.stdout and "not run" not in again.stdout
    assert "isolation: " in again.stdout.splitlines()[1]
    wrong = next(a for q, a in _cards(tmp_path, out, "again")
                 if "what is wrong with this line" in q)
    assert "AttributeError: 'Tensor' object has no attribute 'backwards'" in wrong


def test_the_opt_out_is_loud_and_named_in_the_output(tmp_path):
    note = tmp_path / "ref.md"
    shutil.copy(FIXTURES / "checks" / "reference-claims.md", note)
    r = ankigen("check", str(note), OPT_OUT_FLAG)
    assert r.stderr.splitlines()[0] == (
        f"ankigen: warning: {OPT_OUT_FLAG}: the notes' code runs unsandboxed, as this user, "
        "with your files and network; use it only for notes you trust")
    assert r.stderr.splitlines()[-2] == ("isolation: NONE — the notes' code ran unsandboxed as "
                                         f"this user ({OPT_OUT_FLAG})")
    assert UNSANDBOXED  # the runner's own word for it


def test_grader_reports_code_as_not_run_when_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(keeper_module, "Runner", _NoSandbox)
    monkeypatch.chdir(tmp_path)
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANKIGEN_MODEL"):
        monkeypatch.delenv(name, raising=False)
    shutil.copy(FIXTURES / "grader" / "recall.md", tmp_path / "recall.md")
    shutil.copytree(FIXTURES / "grader" / "sources", tmp_path / "sources")
    r = CliRunner().invoke(grader_main, ["grade", "recall.md", "-s", "sources",
                                         "--report", "report.json"])
    assert r.exit_code == 0, r.output
    why = REFUSED.removeprefix("checks not run: ")
    assert f"code not run: {why}" in r.stdout.splitlines()[1]
    assert f": skipped: not run: {why}" in r.stdout
    runs = [c for p in json.loads((tmp_path / "report.json").read_text())["parts"]
            for c in p["code"]]
    assert runs and {c["status"] for c in runs} == {"skipped"}  # never "ok"


# --- item 7: nothing a note does not decide is shared with another note --------------------

def test_a_block_tagged_text_does_not_share_the_honest_notes_result(tmp_path):
    """Same code in both notes; the first (built first) hides its first block as `text`,
    so its claim verifies. The honest note's claim is contradicted and must stay so."""
    vault = _vault(tmp_path, "reference-lang-a-hides.md", "reference-lang-b-honest.md")
    out = tmp_path / "deck.apkg"
    r = ankigen("build", str(vault), "-o", str(out))
    assert r.exit_code == 0, r.output
    cards = _cards(tmp_path, out)
    assert len(cards) == 1, cards
    ((q, a),) = cards
    assert "The same code, all of it Python — your notes claim this prints “4”" in q
    assert "It prints: 3" in a


def test_two_notes_with_the_same_feedback_show_their_own_code(tmp_path):
    vault = _vault(tmp_path, "recall-same-feedback-a.md", "recall-same-feedback-b.md")
    out = tmp_path / "deck.apkg"
    r = ankigen("build", str(vault), "-o", str(out))
    assert r.exit_code == 0, r.output
    cards = [(q, a) for q, a in _cards(tmp_path, out) if "what is wrong with this line" in q]
    assert len(cards) == 2
    mine = {("ONLY-IN-NOTE-B" in a, "w = torch.ones(2" in a) for _q, a in cards}
    assert mine == {(True, False), (False, True)}  # each card: its own note's code and output


# --- item 11: what a note holds never reaches a terminal as control characters ------------

def test_escapes_in_a_claim_and_an_exception_cannot_rewrite_the_verdict(tmp_path):
    note = tmp_path / "ansi.md"
    shutil.copy(HOSTILE / "reference-ansi.md", note)
    r = ankigen("check", str(note))
    assert r.exit_code == 4
    assert "\x1b" not in r.output and "\r" not in r.output
    lines = r.stdout.splitlines()[1:]
    assert lines == [
        "  block lines 4-4: ok",
        "    line 4: contradicted: 3    line 4: verified: 3 (it printed '2')",
        "  block lines 8-8: error — ValueError: bad  block lines 8-8: ok"]
    parsed = ankigen("parse", str(note))
    assert "\x1b" not in parsed.output
    js = ankigen("check", str(note), "--json")
    assert "\x1b" not in js.stdout and "\\u001b" in js.stdout  # kept, as JSON escapes


def test_control_characters_never_reach_a_card(tmp_path):
    vault = _vault(tmp_path, "reference-ansi.md")
    out = tmp_path / "deck.apkg"
    r = ankigen("build", str(vault), "-o", str(out))
    assert r.exit_code == 0 and "\x1b" not in r.output, r.output
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        import_apkg(col, out)
        fields = [f for nid in col.find_notes("") for f in col.get_note(nid).fields]
    finally:
        col.close()
    assert fields and not any(re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", f)
                              for f in fields)


def test_clean_strips_escapes_controls_and_bidi_overrides():
    assert clean("a\x1b[2K\x1b[1Gb\x1b]0;title\x07c\x9b31md\u202eé\u2066f\x00\tg\nh") == \
        "abcdé" + "f\tg\nh"
    assert reveal("t\u0435nsor\u200b") == "t\\u0435nsor\\u200b"


# --- item 12: claims compared exactly; look-alikes shown ------------------------------------

def test_claims_are_compared_exactly_and_values_with_their_repr(tmp_path):
    note = tmp_path / "exact.md"
    shutil.copy(HOSTILE / "reference-claims-exact.md", note)
    r = ankigen("check", str(note))
    assert r.exit_code == 3, r.output
    assert r.stdout.splitlines()[1:] == [
        "  block lines 4-4: ok",
        "    line 4: contradicted: 3. (it printed '3')",
        "  block lines 8-15: ok",
        "    line 15: contradicted: 3 (it printed '2')",
        "  block lines 19-21: ok",
        "    line 20: contradicted: tensor(2.) (it printed 't\\u0435nsor(2.)'; look-alike or "
        "invisible characters shown as \\u escapes)",
        "    line 21: contradicted: 3 (it printed '3\\u200b'; look-alike or invisible "
        "characters shown as \\u escapes)",
        "  block lines 25-25: ok",
        "    line 25: verified: tensor([1., 1.])"]


def test_a_look_alike_is_shown_escaped_on_the_card(tmp_path):
    vault = _vault(tmp_path, "reference-claims-exact.md")
    out = tmp_path / "deck.apkg"
    assert ankigen("build", str(vault), "-o", str(out)).exit_code == 0
    answers = [a for q, a in _cards(tmp_path, out) if "“tensor(2.)”" in q]
    assert len(answers) == 1 and "It prints: t\\u0435nsor(2.)" in answers[0]


# --- item 13: exit codes, blocks not runnable here, progress, plain words -------------------

def test_exit_codes_are_in_the_help():
    r = ankigen("check", "--help")
    for line in ("0  every block that could run ran and every claim held",
                 "3  a claim was contradicted",
                 "4  a block raised an error, crashed or timed out (takes precedence over 3)",
                 "5  refused: no sandbox here, nothing ran"):
        assert line in r.stdout


def test_blocks_not_runnable_here_are_counted_and_exit_0(tmp_path):
    note = tmp_path / "here.md"
    shutil.copy(HOSTILE / "reference-not-here.md", note)
    r = ankigen("check", str(note))
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()[1:]
    assert lines[:4] == [
        "  block lines 4-5: ok",  # `%matplotlib inline` left out, the rest ran
        "  block lines 9-9: not runnable here — needs fastai, which is not installed here "
        "(ModuleNotFoundError: No module named 'fastai')",
        "  block lines 13-14: ok",
        "    line 14: verified: 2"]
    assert lines[4].startswith("  block lines 18-19: not runnable here — needs the network, "
                               "which checks do not have (URLError: "), lines[4]
    assert r.stderr.splitlines()[-1] == "4 blocks (2 not runnable here, 2 ok); claims: 1 verified"


def test_a_missing_submodule_of_an_installed_package_is_an_error_exit_4(tmp_path):
    note = tmp_path / "ref.md"
    shutil.copy(FIXTURES / "checks" / "reference-claims.md", note)
    r = ankigen("check", str(note))
    assert r.exit_code == 4  # an error outweighs the contradicted claim (3)
    assert "block lines 18-18: error — ModuleNotFoundError: No module named " \
        "'torch.nn.function'" in r.stdout


def test_the_first_run_says_the_server_is_starting_and_names_the_isolation(tmp_path):
    note = tmp_path / "ok.md"
    note.write_text("# Fine\n\n```python\nprint(1 + 1)  # prints: 2\n```\n")
    r = ankigen("check", str(note))
    assert r.exit_code == 0, r.output
    err = r.stderr.splitlines()
    assert err[0] == "starting the check server…"
    assert err[-2].startswith("isolation: ")
    assert err[-1] == "1 blocks (1 ok); claims: 1 verified"


def test_a_timeout_is_said_in_plain_words(tmp_path):
    note = tmp_path / "hang.md"
    shutil.copy(HOSTILE / "reference-hang.md", note)
    r = ankigen("check", str(note), "--timeout", "1")
    assert r.exit_code == 4
    timed_out = next(x for x in r.stdout.splitlines() if "block lines 10-11" in x)
    assert re.fullmatch(r"  block lines 10-11: timeout — (the block|block 2) ran past its "
                        r"1 s limit and was stopped", timed_out), timed_out
