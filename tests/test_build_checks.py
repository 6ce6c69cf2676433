"""Checks on cards: really run at build time, imported into Anki, cached across builds."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
from anki.collection import Collection

pytest.importorskip("torch")
from anki_helpers import import_apkg, rendered  # noqa: E402

from ankigen.build import build  # noqa: E402
from ankigen.checks import build_hook  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "checks"


def _text(h: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", h.split("</style>")[-1]))


def test_cards_carry_real_output_and_rebuild_runs_nothing(tmp_path):
    vault = tmp_path / "vault"
    vault.mkdir()
    for name in ("recall-pytorch-training.md", "reference-pytorch-basics.md"):
        shutil.copy(FIXTURES / name, vault / name)
    out = tmp_path / "deck.apkg"
    first = build([vault], out, checks=build_hook("cpu"), now=1_000)
    assert first.checks_run > 0
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        log = import_apkg(col, out)
        assert log.new == first.notes
        answers = {_text(q): _text(a) for _, q, a in rendered(col)}
    finally:
        col.close()
    wrong = next(a for q, a in answers.items() if "what is wrong with this line" in q)
    assert "AttributeError: 'Tensor' object has no attribute 'backwards'" in wrong
    assert "torch 2.13" in wrong and "cpu" in wrong
    param = next(a for q, a in answers.items() if "The name is [...]" in q and "Parameter" in a)
    assert "Check: nn.Parameter registers a tensor as a parameter" in param
    assert "['w'] True" in param  # what the check really printed
    claim = next(a for q, a in answers.items() if "What does it really print?" in q)
    assert "tensor([ 4.,  8., 12.])" in claim
    # A reference note's block that raises is counted, never carded (issue 12, item 1):
    # only what was marked, or what the learner's own recall got wrong, becomes a card.
    assert not [q for q in answers if "does not run" in q]
    assert "reference notes' code: 5 blocks (1 error, 4 ok) (errors make no card: " \
        "ankigen check shows them); 1 wrong claim carded" in first.checks
    # the tutor's answer spells the line right: the card says what running that gives
    assert "With the tutor's correction, loss.backward(), the block runs without an error." \
        in wrong

    again = build([vault], out, checks=build_hook("cpu"), now=2_000)
    assert again.checks_run == 0 and not again.written and again.unchanged == first.notes
    assert "(none run: up to date" in again.checks  # not the first build's "N run"
    # Another device is another deck: the unchanged vault is not "up to date" for it.
    cuda = build([vault], out, checks=build_hook("cuda"), now=3_000)
    assert cuda.parsed > 0 or cuda.checks_run > 0


def _vault(tmp_path: Path, *names: str, folder: Path = FIXTURES) -> Path:
    vault = tmp_path / "vault"
    vault.mkdir()
    for name in names:
        shutil.copy(folder / name, vault / Path(name).name)
    return vault


def test_results_are_cached_by_code_torch_and_device_not_by_the_vault(tmp_path):
    """Not the whole-vault shortcut: with it off and a note added, no check runs again."""
    vault = _vault(tmp_path, "recall-pytorch-training.md")
    out = tmp_path / "deck.apkg"
    first = build([vault], out, checks=build_hook("cpu"), now=1_000)
    assert first.checks_run > 0
    shutil.copy(FIXTURES.parent / "vault" / "recall-cnn.md", vault / "recall-cnn.md")
    again = build([vault], out, checks=build_hook("cpu"), now=2_000, use_cache=False)
    assert again.parsed == 2 and again.written  # it really rebuilt
    cnn_only = {"conv-output-size", "flatten", "adam-bias"}  # checks only the new note needs
    assert 0 < again.checks_run <= len(cnn_only)
    third = build([vault], out, checks=build_hook("cpu"), now=3_000, use_cache=False)
    assert third.checks_run == 0
    other_device = build([vault], out, checks=build_hook("cuda"), now=4_000, use_cache=False)
    assert other_device.checks_run > 0  # (code, torch, device): cuda results are their own


def test_a_check_that_hangs_is_reported_never_passes_and_never_stops_the_build(tmp_path):
    vault = _vault(tmp_path, "recall-loops.md", "reference-hang.md", folder=FIXTURES / "hostile")
    out = tmp_path / "deck.apkg"
    first = build([vault], out, checks=build_hook("cpu", timeout_s=1.0), now=1_000)
    assert first.written and first.notes == 1  # the wrong loop; the note's hang is no card
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        import_apkg(col, out)
        ((_, q, a),) = rendered(col)
    finally:
        col.close()
    assert "while w.sum() > 0:" in _text(q)
    assert "timeout · torch 2.13" in _text(a) and "ran past its 1 s limit and was stopped" in _text(a)
    assert "ran cleanly" not in _text(a)
    again = build([vault], out, checks=build_hook("cpu", timeout_s=1.0), now=2_000,
                  use_cache=False)
    assert again.checks_run == 2  # neither hang was cached: both are tried again


def test_a_runner_that_cannot_start_skips_checks_and_the_build_goes_on(tmp_path, monkeypatch):
    import ankigen.checks.keeper as keeper_module
    from ankigen.errors import CheckError

    class Broken:
        def __init__(self, **_kw: object) -> None:
            raise CheckError("the check server did not start inside bubblewrap")

    monkeypatch.setattr(keeper_module, "Runner", Broken)  # what open_runner starts
    vault = _vault(tmp_path, "recall-pytorch-training.md")
    result = build([vault], tmp_path / "deck.apkg", checks=build_hook("cpu"), now=1_000)
    assert result.written and result.notes > 0 and result.checks_run == 0
    assert result.checks == "skipped: the check server did not start inside bubblewrap"


def test_the_shipped_vault_builds_as_its_manifest_says(tmp_path):
    """`make run` on a fresh clone rewrites no note: the committed manifest matches what the
    cards now hold (update it with `ankigen build notes/` when card content changes)."""
    vault = tmp_path / "notes"
    shutil.copytree(Path(__file__).parent.parent / "notes", vault)
    result = build([vault], tmp_path / "deck.apkg", checks=build_hook("cpu"))
    assert (result.new, result.changed) == (0, 0), "notes/.ankigen/manifest.json is stale"
    assert (vault / ".ankigen" / "manifest.json").read_bytes() == \
        (Path(__file__).parent.parent / "notes" / ".ankigen" / "manifest.json").read_bytes()
