"""Bad input: one exact line naming the file (and line), exit 1, nothing half-written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ankigen.cli import main

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    shutil.copy(FIXTURES / "vault" / "recall-cnn.md", tmp_path / "recall-cnn.md")
    return tmp_path


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def _no_output_left(where: Path) -> None:
    assert not list(where.glob("*.apkg")) and not list(where.glob(".*.tmp"))


def test_missing_path(workdir):
    r = run("build", "nope", "-o", "out/deck.apkg")
    assert r.exit_code == 1
    assert r.stderr == "ankigen: error: nope: no such file or directory\n"
    assert not (workdir / "out").exists()
    _no_output_left(workdir)


def test_empty_vault(workdir):
    (workdir / "empty").mkdir()
    r = run("build", "empty", "-o", "out/deck.apkg")
    assert r.exit_code == 1
    assert r.stderr == "ankigen: error: empty: no markdown notes found (expected *.md files)\n"
    assert not (workdir / "out").exists()
    _no_output_left(workdir)


def test_vault_of_only_other_files_is_empty(workdir):
    (workdir / "v").mkdir()
    (workdir / "v" / "slides.pdf").write_bytes(b"%PDF-1.4")
    r = run("build", "v", "-o", "out/deck.apkg")
    assert r.exit_code == 1
    assert r.stderr == "ankigen: error: v: no markdown notes found (expected *.md files)\n"
    assert not (workdir / "out").exists()


def test_binary_file_named_md(workdir):
    (workdir / "pic.md").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    r = run("build", "pic.md", "-o", "out/deck.apkg")
    assert r.exit_code == 1
    assert r.stderr == "ankigen: error: pic.md:3: not a markdown file (binary content)\n"
    assert not (workdir / "out").exists()


def test_binary_file_inside_vault_names_the_file(workdir):
    vault = workdir / "vault"
    vault.mkdir()
    shutil.copy(workdir / "recall-cnn.md", vault / "a.md")
    (vault / "b.md").write_bytes(b"PK\x03\x04\x00\x00")
    r = run("build", "vault", "-o", "out/deck.apkg")
    assert r.exit_code == 1
    assert r.stderr == "ankigen: error: b.md: not a markdown file (binary content)\n"
    assert not (workdir / "out").exists()


def test_not_markdown_extension(workdir):
    (workdir / "notes.pdf").write_bytes(b"%PDF-1.4")
    r = run("parse", "notes.pdf")
    assert r.exit_code == 1
    assert r.stderr == "ankigen: error: notes.pdf: not a markdown file (expected .md, got .pdf)\n"
    r = run("build", "recall-cnn.md", "notes.pdf", "-o", "out/deck.apkg")
    assert r.exit_code == 1
    assert r.stderr == "ankigen: error: notes.pdf: not a markdown file (expected .md, got .pdf)\n"
    assert not (workdir / "out").exists()
    _no_output_left(workdir)


def test_unwritable_out(workdir):
    (workdir / "blocker").write_text("a file where a folder should be")
    r = run("build", "recall-cnn.md", "-o", "blocker/deck.apkg")
    assert r.exit_code == 1
    assert r.stderr == "ankigen: error: blocker/deck.apkg: cannot write: blocker is not a folder\n"
    assert not (workdir / ".ankigen").exists()  # no manifest for a deck never written
    _no_output_left(workdir)


def test_out_folder_we_may_not_write_to(workdir, monkeypatch):
    # Tests run as root, where chmod cannot refuse a write: refuse it where the OS would.
    (workdir / "out").mkdir()
    import ankigen.deck

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ankigen.deck.tempfile, "mkstemp", refuse)
    r = run("build", "recall-cnn.md", "-o", "out/deck.apkg")
    assert r.exit_code == 1
    assert r.stderr == "ankigen: error: out/deck.apkg: cannot write: Permission denied\n"
    assert list((workdir / "out").iterdir()) == []
    assert not (workdir / ".ankigen").exists()


def test_failed_write_leaves_previous_deck_whole(workdir, monkeypatch):
    out = workdir / "out" / "deck.apkg"
    assert run("build", "recall-cnn.md", "-o", str(out)).exit_code == 0
    good = out.read_bytes()
    from ankigen.deck import VaultPackage  # the writer every build uses (media packed in memory)

    def boom(self, file, timestamp=None):
        Path(file).write_bytes(b"half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(VaultPackage, "write_to_file", boom)
    (workdir / "recall-cnn.md").write_text((workdir / "recall-cnn.md").read_text() + "\nI forgot the rest.\n")
    r = run("build", "recall-cnn.md", "-o", str(out))
    assert r.exit_code == 1
    assert r.stderr == f"ankigen: error: {out}: cannot write: No space left on device\n"
    assert out.read_bytes() == good
    assert [p.name for p in out.parent.iterdir()] == ["deck.apkg"]


def test_non_utf8_file_is_read_with_a_warning(workdir):
    (workdir / "latin.md").write_bytes("# Notes\n\nSo, caf\xe9 tensors. I don't remember the rest.\n".encode("cp1252"))
    r = run("build", "latin.md", "-o", "out/deck.apkg")
    assert r.exit_code == 0
    assert "ankigen: warning: latin.md:3: not valid UTF-8; decoded as cp1252 instead\n" in r.stderr
    from anki.collection import Collection
    from anki_helpers import import_apkg, rendered

    col = Collection(str(workdir / "c.anki2"))
    try:
        assert import_apkg(col, workdir / "out" / "deck.apkg").new == 1
        ((_, question, _),) = rendered(col)
        assert "Café tensors — So, café tensors. … what did you forget here?" in question
    finally:
        col.close()
