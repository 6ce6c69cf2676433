"""Wrong PyTorch names in recall notes are caught by running them (issue 11, item 3).

The fixture's wrong names (`loss.backpropagate()`, `optimizer.update()`,
`model.clear_grads()`, `w.flush_grad()`) are the test's own: nothing here or in ankigen
lists them. Only the sandbox's lookup on a real torch object decides they do not exist."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
from anki.collection import Collection

pytest.importorskip("torch")
from anki_helpers import import_apkg, rendered  # noqa: E402

from ankigen.build import _parse_doc, build  # noqa: E402
from ankigen.checks import build_hook  # noqa: E402
from ankigen.checks import names  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures" / "checks" / "names"
NOTE = "recall-names.md"


def _text(h: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", h.split("</style>")[-1])).split())


def _vault(tmp_path: Path) -> Path:
    vault = tmp_path / "vault"
    vault.mkdir()
    shutil.copy(FIXTURES / NOTE, vault / NOTE)
    return vault


def _cards(tmp_path: Path, apkg: Path, name: str = "c") -> list[tuple[str, str]]:
    col = Collection(str(tmp_path / f"{name}.anki2"))
    try:
        log = import_apkg(col, apkg)
        assert log.new + log.updated > 0 or log.duplicate >= 0
        return [(_text(q), _text(a)) for _, q, a in rendered(col)]
    finally:
        col.close()


def test_candidates_follow_the_part_and_the_learners_code():
    """No sandbox needed: which calls are looked up at all. A scikit-learn part's
    model.fit() is not PyTorch; the learner's own `model = nn.Linear(4, 2)` is run."""
    data = (FIXTURES / NOTE).read_bytes()
    doc = _parse_doc(NOTE, data, False)
    found = names.find([doc], {NOTE: data})
    calls = {f"{u.expr}.{u.name}" for u in found.uses}
    assert {"loss.backpropagate", "optimizer.update", "model.clear_grads", "w.flush_grad",
            "model.parameters", "loss.item", "torch.manual_seed"} <= calls
    assert not calls & {"model.fit", "model.predict", "scaler.fit_transform", "model.train_all"}
    (scope,) = found.programs[NOTE]
    assert scope.roles and "model = nn.Linear(4, 2)" in scope.assign
    # the tutor's correction is a candidate for the right call, never a use
    assert any(c.call == "model.zero_grad()" and c.where == "your notes"
               for c in found.candidates)
    assert not any(u.name == "zero_grad" for u in found.uses)


def test_wrong_names_get_cards_with_the_real_error_and_the_right_call(tmp_path):
    vault = _vault(tmp_path)
    out = tmp_path / "deck.apkg"
    first = build([vault], out, checks=build_hook("cpu"), now=1_000)
    assert first.checks_run > 0
    assert "PyTorch calls looked up, 4 wrong" in first.checks
    cards = _cards(tmp_path, out)
    wrong = {q: a for q, a in cards if "does not exist on" in q}
    assert len(wrong) == 4, list(wrong)

    def card(call: str) -> str:
        ((q, a),) = [(q, a) for q, a in wrong.items() if f"{call} does not exist" in q]
        assert "what is the real call for what you meant?" in q
        return a

    expected = {
        "loss.backpropagate()": ("'Tensor' object has no attribute 'backpropagate'",
                                 "loss.backward()"),
        "optimizer.update()": ("'SGD' object has no attribute 'update'", "step()"),
        "model.clear_grads()": ("'Linear' object has no attribute 'clear_grads'",
                                "model.zero_grad()"),
        "w.flush_grad()": ("'Tensor' object has no attribute 'flush_grad'", "w.grad.zero_()"),
    }
    for call, (error, right) in expected.items():
        back = card(call)
        assert f"AttributeError: {error}" in back  # from the run, in the answer and the check
        assert back.count(error) >= 2, back
        assert f"The right call: {right}" in back.replace("The right call: opt.", "The right call: ")
        assert "ran cleanly" in back and f"{right.split('(')[0].split('.')[-1]}" in back
        assert ": runs" in back  # the check ran the right call, beside the wrong one
    # the right call from the learner's own notes says so
    assert "(from your notes)" in card("model.clear_grads()")
    # names that exist, and the scikit-learn part, get nothing
    for q in wrong:
        for fine in ("parameters()", "loss.item()", "manual_seed", "model.fit", "predict",
                     "train_all"):
            assert f"{fine} does not exist" not in q

    again = build([vault], out, checks=build_hook("cpu"), now=2_000)
    assert again.checks_run == 0 and not again.written
    rebuilt = build([vault], out, checks=build_hook("cpu"), now=3_000, use_cache=False)
    assert rebuilt.checks_run == 0 and rebuilt.parsed == 1  # every lookup and check cached
    assert (rebuilt.new, rebuilt.changed) == (0, 0)


def test_without_a_sandbox_no_wrong_name_card_and_the_build_says_why(tmp_path, monkeypatch):
    vault = _vault(tmp_path)
    out = tmp_path / "deck.apkg"
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))  # a PATH without bwrap
    result = build([vault], out, checks=build_hook("cpu"), now=1_000)
    assert result.written and result.checks_run == 0
    assert result.checks.startswith("not run: bubblewrap is not installed"), result.checks
    assert "PyTorch calls in recall notes not looked up, so no card for a wrong name" \
        in result.checks
    cards = _cards(tmp_path, out)
    assert cards and not any("does not exist on" in q for q, _ in cards)
