""""What you wrote" (ankigen/wrote.py): the learner's words the front does not already show,
in whole sentences, empty only when the front shows all of them (docs/cards.md, rule 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ankigen.model import Gap
from ankigen.parse import parse_file
from ankigen.wrote import LIMIT, sentence_spans, trim, what_you_wrote

FIXTURES = Path(__file__).parent / "fixtures"


def _gap(rel: str, line: int) -> Gap:
    path = FIXTURES / rel
    gaps = [g for g in parse_file(path, path.name).gaps if g.line == line]
    assert len(gaps) == 1
    return gaps[0]


@pytest.mark.parametrize(("rel", "line"), [
    ("parse/chains.md", 5),                   # "you wrote: “…” What is missing or wrong here?"
    ("topics/session-goal-headings.md", 33),  # the same, two sentences quoted
    ("labelled/pca/recall.md", 92),           # "… I forgot the name of … — what is the name?"
])
def test_a_front_that_shows_all_the_learner_wrote_leaves_it_empty(rel: str, line: int) -> None:
    # These cards repeated the front's sentences under "what you wrote" (62-97 % alike).
    assert _gap(rel, line).context == ""


def test_a_front_that_shows_one_sentence_leaves_the_others() -> None:
    gap = _gap("unmarked/sessions/session-optimizers.md", 11)
    assert gap.prompt == ("Schedules — The learning rate goes down as training goes on. What's the "
                          "other schedule that warms up first?")
    assert gap.context == "So, schedules."


def test_the_learners_line_under_a_question_made_of_it() -> None:
    # "I don't remember how …" asks "how does …?"; the line itself says more than that.
    gap = _gap("unmarked/sessions/session-autograd.md", 14)
    assert gap.prompt == "Autograd — how does to stop gradient flowing?"
    assert gap.context == "I don't remember how to stop gradients flowing."


def test_a_long_paragraph_keeps_its_last_whole_sentences() -> None:
    gap = _gap("llm-cards/wrote/recall-training.md", 9)
    assert gap.context == (
        "… Nesterov momentum is the same but it measures the gradient a little ahead, at the "
        "point the momentum is about to carry it to, and that usually converges a bit faster. "
        "AdaGrad scales each parameter's step by the square root of the sum of its past squared "
        "gradients, so steep directions get small steps.")
    assert len(gap.context) <= LIMIT


def test_sentences_split_at_ends_and_line_breaks_not_at_hard_wraps() -> None:
    wrapped = ("Projection works when the instances lie close to a lower-dimensional\n"
               "subspace. A list follows:\n- one\n- two")
    assert [wrapped[a:b] for a, b in sentence_spans(wrapped)] == [
        "Projection works when the instances lie close to a lower-dimensional\nsubspace.",
        "A list follows:", "- one", "- two"]


def test_what_is_left_keeps_its_line_breaks() -> None:
    text = "First line here.\nSecond line, shown on the front.\nThird line."
    assert what_you_wrote("You wrote: “Second line, shown on the front.” Why?", text) == (
        "First line here.\nThird line.")
    assert what_you_wrote("What about it?", text) == text


def test_one_sentence_longer_than_the_limit_keeps_its_end_from_a_word() -> None:
    long = "word " * 200 + "end."
    assert trim(long) == "… " + ("word " * 200 + "end.")[-(LIMIT - 2):].split(" ", 1)[1]
    assert trim(long).endswith("word end.") and len(trim(long)) <= LIMIT
