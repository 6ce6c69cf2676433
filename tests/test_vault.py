"""Vault behaviour (ankigen/vault.py, build.discover_vault): building part of a vault judges
only that part; symlinks are followed inside the vault and never out of it; `parse`
previews the cards a build makes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from anki.collection import Collection
from anki_helpers import import_apkg
from click.testing import CliRunner

from ankigen.build import build
from ankigen.cli import main
from ankigen.identity import manifest_path

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    """recall-cnn.md (10 cards) and reference-autograd.md (none without checks) at the top,
    the topics session (3 cards) in sub/."""
    v = tmp_path / "vault"
    shutil.copytree(FIXTURES / "vault", v)
    (v / "sub").mkdir()
    shutil.copy(FIXTURES / "topics" / "session-goal-headings.md", v / "sub" / "rnn.md")
    return v


def _manifest(v: Path) -> dict[str, list[str]]:
    by_file: dict[str, list[str]] = {}
    for e in json.loads(manifest_path(v).read_text("utf-8"))["notes"]:
        by_file.setdefault(e["file"], []).append(e["guid"])
    return by_file


@pytest.mark.parametrize("part", ["sub/rnn.md", "sub", "recall-cnn.md"])
def test_building_part_of_a_vault_judges_only_that_part(vault, tmp_path, part):
    whole = build([vault], tmp_path / "all.apkg", checks=None, now=1_000)
    assert (whole.notes, whole.orphans) == (13, ())
    before = _manifest(vault)
    one = build([vault / part], tmp_path / "one.apkg", checks=None, now=2_000, prune=True)
    assert one.orphans == ()  # the rest of the vault is not "no longer in the notes"
    assert one.notes == (10 if part == "recall-cnn.md" else 3) and one.new == 0
    assert _manifest(vault) == before  # same paths, same GUIDs; --prune forgot nothing
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, tmp_path / "all.apkg").new == 13
        log = import_apkg(col, tmp_path / "one.apkg")  # the same notes, not duplicates
        assert (log.new, log.updated) == (0, 0) and col.note_count() == 13
    finally:
        col.close()


def test_a_gap_gone_from_the_built_file_is_its_only_orphan(vault, tmp_path):
    build([vault], tmp_path / "all.apkg", checks=None, now=1_000)
    note = vault / "sub" / "rnn.md"
    note.write_text(note.read_text("utf-8").replace(
        "I forgot the name of the cell with input, forget and output gates => LSTM\n", ""),
        "utf-8")
    one = build([note], tmp_path / "one.apkg", checks=None, now=2_000)
    assert [o.file for o in one.orphans] == ["sub/rnn.md"]
    pruned = build([note], tmp_path / "one.apkg", checks=None, now=3_000, prune=True)
    assert [o.file for o in pruned.orphans] == ["sub/rnn.md"]  # reported once more, then gone
    assert build([vault], tmp_path / "all.apkg", checks=None, now=4_000).orphans == ()
    assert {f: len(g) for f, g in _manifest(vault).items()} == {"recall-cnn.md": 10,
                                                               "sub/rnn.md": 2}


def test_symlinks_are_followed_inside_the_vault_only(vault, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(FIXTURES / "seeds" / "recall-ch9-10.md", outside / "secret.md")
    (vault / "linked").symlink_to(vault / "sub")  # a second way into sub/: built once
    (vault / "more").mkdir()
    (vault / "more" / "rnn-link.md").symlink_to(vault / "sub" / "rnn.md")
    (vault / "notes-elsewhere").symlink_to(outside)
    (vault / "secret.md").symlink_to(outside / "secret.md")
    (vault / "sub" / "loop").symlink_to(vault)
    (vault / "topics").symlink_to(FIXTURES / "topics")  # outside the vault too
    result = build([vault], tmp_path / "d.apkg", checks=None, now=1_000)
    assert sorted(result.warnings) == [
        "notes-elsewhere: symlink leads outside the vault: not followed",
        "secret.md: symlink leads outside the vault: not read",
        "sub/loop: symlink loops back to a folder above it: not followed",
        "topics: symlink leads outside the vault: not followed",
    ]
    assert (result.files, result.notes) == (3, 13)  # recall-cnn, reference-autograd, sub/rnn
    assert set(_manifest(vault)) == {"recall-cnn.md", "sub/rnn.md"}
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, tmp_path / "d.apkg").new == 13
    finally:
        col.close()


def test_a_linked_folder_inside_the_vault_is_built(vault, tmp_path):
    real = tmp_path / "vault" / "archive" / "2023"
    real.mkdir(parents=True)
    shutil.move(str(vault / "sub" / "rnn.md"), real / "rnn.md")
    (vault / "sub" / "old").symlink_to(real)
    (vault / ".obsidian").mkdir()  # the vault root, though sub/ is what is built
    result = build([vault / "sub"], tmp_path / "d.apkg", checks=None, now=1_000)
    assert (result.files, result.notes, result.warnings) == (1, 3, ())
    assert "sub/old/rnn.md" in _manifest(vault)
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, tmp_path / "d.apkg").new == 3
    finally:
        col.close()


def test_parse_previews_every_card_a_build_makes(vault, tmp_path):
    shutil.copytree(FIXTURES / "media" / "vault" / "ch1", vault / "ch1")
    r = CliRunner().invoke(main, ["parse", str(vault)])
    assert r.exit_code == 0, r.output
    per_file = dict(re.findall(r"^(\S+\.md): (\d+) card\(s\), one per gap above", r.stdout, re.M))
    assert per_file == {"ch1/recall-images.md": "4", "recall-cnn.md": "10",
                        "reference-autograd.md": "0", "sub/rnn.md": "3"}
    assert "17 card(s) from 4 files, as `ankigen build --no-checks` makes them" in r.stdout
    fronts = re.findall(r"^\S+ gap line \d+ \[\w+\]: (.+)$", r.stdout, re.M)
    result = build([vault], tmp_path / "d.apkg", checks=None, now=1_000)
    assert result.notes == len(fronts) == 17
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, tmp_path / "d.apkg").new == 17
    finally:
        col.close()
    listed = json.loads(CliRunner().invoke(main, ["parse", str(vault / "sub"), "--json"]).stdout)
    assert [d["path"] for d in listed] == ["sub/rnn.md"]
