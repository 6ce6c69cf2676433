"""The `ankigen` command as a process: after a build it ends with os._exit (cli.run), so
its output must be flushed and its exit code kept on that path."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from anki.collection import Collection
from anki_helpers import import_apkg

FIXTURE = Path(__file__).parent / "fixtures" / "vault" / "recall-cnn.md"


def _ankigen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ankigen.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_the_console_script_is_run():
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["ankigen"] == "ankigen.cli:run"


def test_a_build_exits_at_once_with_its_output_and_deck_whole(tmp_path):
    shutil.copy(FIXTURE, tmp_path / FIXTURE.name)
    done = _ankigen("build", FIXTURE.name, "-o", "deck.apkg", "--no-checks", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("wrote deck.apkg: ") and len(lines) == 2
    assert lines[1].endswith("checks: not requested")
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, tmp_path / "deck.apkg").new == int(lines[0].split()[2]) > 0
    finally:
        col.close()
    again = _ankigen("build", FIXTURE.name, "-o", "deck.apkg", "--no-checks", "--json",
                     cwd=tmp_path)
    assert again.returncode == 0 and '"written": false' in again.stdout
    assert again.stdout.rstrip().endswith("}")  # the whole JSON, flushed


def test_a_failed_build_keeps_its_exit_code_and_message(tmp_path):
    done = _ankigen("build", "missing.md", "-o", "deck.apkg", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "ankigen: error: missing.md: no such file or directory\n"
    assert not (tmp_path / "deck.apkg").exists()
