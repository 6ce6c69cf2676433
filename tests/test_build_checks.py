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
    broken = next(a for q, a in answers.items() if "does not run" in q)
    assert "No module named 'torch.nn.function'" in broken

    again = build([vault], out, checks=build_hook("cpu"), now=2_000)
    assert again.checks_run == 0 and not again.written and again.unchanged == first.notes
