"""The CLI prints what the library found, verbatim: searches a learner pastes into Anki work."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from anki.collection import Collection
from anki_helpers import import_apkg
from click.testing import CliRunner

from ankigen.cli import main

FIXTURES = Path(__file__).parent / "fixtures"


def test_printed_orphan_search_finds_the_note_in_anki(tmp_path):
    vault = tmp_path / "vault"
    shutil.copytree(FIXTURES / "vault", vault)
    out = tmp_path / "deck.apkg"
    first = CliRunner().invoke(main, ["build", str(vault), "-o", str(out), "--no-checks"])
    assert first.exit_code == 0, first.output
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, out).new == 10
        notes = vault / "recall-cnn.md"
        notes.write_text(notes.read_text().replace(
            "The weight decay trick I don't remember at all.\n", ""))
        again = CliRunner().invoke(main, ["build", str(vault), "-o", str(out), "--no-checks"])
        assert again.exit_code == 0, again.output
        # rich once printed `tag:ankigen:🆔:…` here (":id:" read as an emoji code).
        searches = re.findall(r"^\s+(tag:\S+)\s+\(recall-cnn\.md: ", again.stdout, re.M)
        assert len(searches) == 1 and re.fullmatch(r"tag:ankigen::id::[0-9a-f]{12}", searches[0])
        (nid,) = col.find_notes(searches[0])
        assert "weight decay" in col.get_note(nid).fields[0]
        assert import_apkg(col, out).new == 0
    finally:
        col.close()


def test_parse_prints_note_text_as_written(tmp_path):
    notes = tmp_path / "n.md"
    notes.write_text("# Notes\n\nSo, tags. The :id: and :smile: codes I don't remember.\n")
    r = CliRunner().invoke(main, ["parse", str(notes)])
    assert r.exit_code == 0
    assert "The :id: and :smile: codes … what did you forget here?" in r.stdout


def test_build_on_a_terminal_shows_a_progress_bar(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    import ankigen.cli

    screen = io.StringIO()
    monkeypatch.setattr(ankigen.cli, "err", Console(file=screen, force_terminal=True, width=80))
    vault = tmp_path / "vault"
    shutil.copytree(FIXTURES / "vault", vault)
    r = CliRunner().invoke(main, ["build", str(vault), "-o", str(tmp_path / "d.apkg"),
                                  "--no-checks"])
    assert r.exit_code == 0, r.output
    shown = screen.getvalue()
    assert "parse" in shown and "2/2" in shown  # stage, files done / files
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, tmp_path / "d.apkg").new == 10
    finally:
        col.close()
