"""The card rubric (docs/cards.md) on the labelled card set: ≥ 90 % of cards meet every rule,
offline, on each split (issue 11, item 1). bench/card_rubric.py prints the misses."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SET = ROOT / "tests" / "fixtures" / "cards"
TARGET = 0.90


def _bench():
    spec = importlib.util.spec_from_file_location("card_rubric", ROOT / "bench" / "card_rubric.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["card_rubric"] = module
    spec.loader.exec_module(module)
    return module


bench = _bench()


def test_the_set_is_big_enough_and_covers_every_kind_the_parser_makes() -> None:
    labels = [label for folder in bench.splits(SET)
              for label in __import__("json").loads((folder / "labels.json").read_text())["gaps"]]
    assert len(labels) >= 40
    kinds = {label["kind"] for label in labels}
    assert kinds >= {"assessment", "question", "inline_mark", "forgot_name", "looked_up",
                     "inline_answer", "forgot", "self_question", "wrong_code"}
    held = len(__import__("json").loads((SET / "heldout" / "labels.json").read_text())["gaps"])
    assert held * 3 >= len(labels)  # the held-out split is at least a third


@pytest.mark.parametrize("split", ["heldout", "tuning"])
def test_cards_meet_the_rubric(split: str) -> None:
    results = bench.score_split(SET / split)
    good, total = bench.report(results)
    misses = [f"{r.file}:{r.line} {r.front[:60]!r}: {'; '.join(r.broke)}" for r in results
              if not r.ok]
    assert good / total >= TARGET, "\n".join(misses)


def test_aggregate_only_prints_a_splits_totals_and_never_a_card(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert bench.main([str(SET), "--aggregate-only"]) == 0
    out = capsys.readouterr().out
    held, tuning = out.split("\ntuning: ")
    assert held.startswith("heldout: ") and "cards meet every rule" in held
    assert ".md" not in held and "MISS" not in held  # no file, no card
    assert "cards meet every rule" in tuning
    assert bench.main([str(SET), "--aggregate-only", "--aggregate-only", "tuning", "--json"]) == 0
    data = __import__("json").loads(capsys.readouterr().out)
    assert set(data["heldout"]) == set(data["tuning"]) == {"met", "cards", "share",
                                                           "misses_by_rule"}


@pytest.mark.parametrize("args", [[], ["--aggregate-only", "validation"], ["--all"]])
def test_the_held_out_split_is_totals_only_unless_asked(
        capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    # naming another split for --aggregate-only once printed the held-out split card by card
    assert bench.main([str(SET), *args]) == 0
    held = capsys.readouterr().out.split("\ntuning: ")[0]
    assert held.startswith("heldout: ") and ".md" not in held and "MISS" not in held
    assert bench.main([str(SET), "--all", "--show-heldout"]) == 0
    held = capsys.readouterr().out.split("\ntuning: ")[0]
    assert ".md" in held  # every card listed, file and line
