"""Docs that cannot rot: every command has help, and the README's commands still work."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ankigen.cli import main as ankigen_main

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def _groups():
    groups = [("ankigen", ankigen_main)]
    try:
        from grader.cli import main as grader_main
    except ImportError:
        pass
    else:
        groups.append(("grader", grader_main))
    return groups


def _commands(group: click.Group):
    yield group
    yield from group.commands.values()


@pytest.mark.parametrize("name,group", _groups())
def test_every_command_and_option_has_help(name, group):
    for cmd in _commands(group):
        assert (cmd.help or "").strip(), f"{name} {cmd.name}: no help text"
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert (param.help or "").strip(), f"{name} {cmd.name} {param.opts}: no help"


def test_readme_has_exactly_two_setup_commands():
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", setup, re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in block.splitlines() if ln.split("#")[0].strip()]
    assert commands == ["make run", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _readme_invocations(prog: str):
    for line in README.splitlines():
        line = line.split("  #")[0].strip()
        if line.startswith(f".venv/bin/{prog} "):
            yield shlex.split(line)[1:]


@pytest.mark.parametrize("args", [a for a in _readme_invocations("ankigen")
                                  if "out/graded.md" not in a], ids=" ".join)
def test_readme_ankigen_commands_run(args, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    args = [str(tmp_path / "deck.apkg") if a.startswith("out/") else a for a in args]
    if args[0] == "build":
        import shutil

        shutil.copytree(ROOT / "notes", tmp_path / "notes")  # keep the shipped manifest as is
        args = [str(tmp_path / "notes") if a == "notes/" else a for a in args]
    result = CliRunner().invoke(ankigen_main, args + (["--no-checks"] if args[0] == "build" else []))
    # check: 0 all held, 3 a claim contradicted, 4 a block failed (docs/checks.md)
    assert result.exit_code in (0, 3, 4) if args[0] == "check" else result.exit_code == 0, result.output
    assert result.output.strip()
    if args[0] == "build":  # the deck the README promises imports into Anki
        _imports_into_anki(tmp_path / "deck.apkg", tmp_path)


def _imports_into_anki(apkg: Path, tmp_path: Path) -> None:
    from anki.collection import Collection
    from anki_helpers import import_apkg

    col = Collection(str(tmp_path / "c.anki2"))
    try:
        log = import_apkg(col, apkg)
        assert log.new > 0 and col.note_count() == log.new
    finally:
        col.close()


def test_readme_grading_commands_run_as_written(tmp_path, monkeypatch):
    """The README's grader lines, in order, offline, with out/ in a temp folder: grading the
    example session writes graded notes that ankigen builds into a deck Anki imports."""
    from grader.cli import main as grader_main

    monkeypatch.chdir(ROOT)
    for name in ("OPENAI_BASE_URL", "ANKIGEN_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    invocations = [(prog, args) for prog in ("grader", "ankigen")
                   for args in _readme_invocations(prog)
                   if prog == "grader" or "out/graded.md" in args]
    invocations.sort(key=lambda pa: README.index(" ".join([f".venv/bin/{pa[0]}", *pa[1][:2]])))
    assert [a[0] for _, a in invocations] == ["grade", "grade", "build", "eval"]
    for prog, args in invocations:
        args = [str(tmp_path / a[4:]) if a.startswith("out/") else a for a in args]
        group = grader_main if prog == "grader" else ankigen_main
        result = CliRunner().invoke(group, args)
        assert result.exit_code == 0, (prog, args, result.output)
    assert (tmp_path / "graded.md").read_text().count("🔴") >= 1
    assert json.loads((tmp_path / "report.json").read_text())["mode"] == "offline"
    _imports_into_anki(tmp_path / "weak-spots.apkg", tmp_path)
