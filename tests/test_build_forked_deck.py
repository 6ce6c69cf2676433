"""A plain build of a big deck writes it in a forked child while the build saves its cache
and makes its manifest (build.FORKED_DECK_FROM): the same deck as written in the build's
own process, and a child that fails or dies is one clear line with nothing half-written."""

from __future__ import annotations

import os
import shutil
import sqlite3
import zipfile
from pathlib import Path

import pytest
from anki.collection import Collection
from anki_helpers import import_apkg, rendered
from click.testing import CliRunner

import ankigen.build
import ankigen.forked
from ankigen.build import FORKED_DECK_FROM, build
from ankigen.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
CNN = FIXTURES / "vault" / "recall-cnn.md"  # 10 gaps
COPIES = FORKED_DECK_FROM // 10  # enough gaps for the forked writer


def _vault(where: Path) -> Path:
    vault = where / "vault"
    vault.mkdir(parents=True)
    for n in range(COPIES):
        shutil.copy(CNN, vault / f"cnn-{n:03d}.md")
    return vault


def _rows(deck: Path, tmp_path: Path) -> dict[str, list[tuple[object, ...]]]:
    with zipfile.ZipFile(deck) as z:
        assert z.namelist() == ["collection.anki2", "media"]
        db = tmp_path / f"{deck.stem}.anki2"
        db.write_bytes(z.read("collection.anki2"))
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY id").fetchall()
                for t in ("notes", "cards", "col")}
    finally:
        con.close()


def _forks(monkeypatch) -> list[str]:
    """The functions ForkMaps are made for, from now on."""
    made: list[str] = []
    real = ankigen.forked.ForkMap.__init__

    def spy(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        made.append(fn.__name__)
        real(self, fn, *args, **kwargs)

    monkeypatch.setattr(ankigen.forked.ForkMap, "__init__", spy)
    return made


def _rebuilt(where: Path, out: Path) -> object:
    """A build of a vault that has a manifest (a first build made it), into a new deck: the
    build makes the manifest and saves the cache beside the deck writer. (A first build
    makes them as its files arrive and writes the deck itself: tests/test_build_first.py.)"""
    vault = _vault(where)
    build([vault], where / "first.apkg", now=1_000)
    return build([vault], out, now=1_000)


def test_the_forked_writer_writes_the_deck_the_build_itself_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("ANKIGEN_CACHE_DIR", str(tmp_path / "cache"))
    forks = _forks(monkeypatch)
    forked = _rebuilt(tmp_path / "a", tmp_path / "forked.apkg")
    assert forked.notes == COPIES * 10 >= FORKED_DECK_FROM and "deck" in forked.timings
    assert forks.count("_write_deck") == 1  # the rebuild's; the first build wrote its own
    monkeypatch.setattr(ankigen.build, "FORKED_DECK_FROM", forked.notes + 1)
    inline = _rebuilt(tmp_path / "b", tmp_path / "inline.apkg")
    assert forks.count("_write_deck") == 1 and inline.notes == forked.notes
    assert _rows(tmp_path / "forked.apkg", tmp_path) == _rows(tmp_path / "inline.apkg", tmp_path)
    assert ((tmp_path / "a" / "vault" / ".ankigen" / "manifest.json").read_bytes()
            == (tmp_path / "b" / "vault" / ".ankigen" / "manifest.json").read_bytes())
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, tmp_path / "forked.apkg").new == forked.notes
        cards = rendered(col)
        assert len(cards) == forked.notes
        assert all("class=\"source\"" in answer for _, _, answer in cards)
    finally:
        col.close()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANKIGEN_CACHE_DIR", str(tmp_path / "cache"))
    _vault(tmp_path)
    return tmp_path


def _fails_then(workdir: Path, monkeypatch, boom) -> tuple[object, bytes, bytes]:
    """A good build, then one whose forked writer runs `boom`: (result, deck, manifest)."""
    out = workdir / "out" / "deck.apkg"
    assert CliRunner().invoke(main, ["build", "vault", "-o", str(out), "--no-checks"]).exit_code == 0
    good, manifest = out.read_bytes(), (workdir / "vault/.ankigen/manifest.json").read_bytes()
    from ankigen.deck import VaultPackage

    monkeypatch.setattr(VaultPackage, "write_to_file", boom)  # inherited by the fork
    edited = workdir / "vault" / "cnn-000.md"
    edited.write_text(edited.read_text() + "\nI forgot the rest.\n")
    r = CliRunner().invoke(main, ["build", "vault", "-o", str(out), "--no-checks"])
    return r, good, manifest


def test_a_forked_writer_that_fails_is_one_line_and_the_old_deck_stays(workdir, monkeypatch):
    def boom(self, file, timestamp=None):
        Path(file).write_bytes(b"half a zip")
        raise OSError(28, "No space left on device")

    r, good, manifest = _fails_then(workdir, monkeypatch, boom)
    out = workdir / "out" / "deck.apkg"
    assert r.exit_code == 1
    assert r.stderr == f"ankigen: error: {out}: cannot write: No space left on device\n"
    assert out.read_bytes() == good
    assert [p.name for p in out.parent.iterdir()] == ["deck.apkg"]
    # the manifest describes the deck that is there, not the one that failed
    assert (workdir / "vault/.ankigen/manifest.json").read_bytes() == manifest


def test_a_forked_writer_that_dies_is_one_line_and_the_old_deck_stays(workdir, monkeypatch):
    def dies(self, file, timestamp=None):
        os._exit(3)  # killed, out of memory: no exception comes back

    r, good, manifest = _fails_then(workdir, monkeypatch, dies)
    out = workdir / "out" / "deck.apkg"
    assert r.exit_code == 1
    assert r.stderr == (f"ankigen: error: {out}: cannot write: the deck writer ended before "
                        "the deck was written\n")
    assert out.read_bytes() == good
    assert (workdir / "vault/.ankigen/manifest.json").read_bytes() == manifest
