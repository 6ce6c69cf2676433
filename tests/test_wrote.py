""""What you wrote" (ankigen/wrote.py): the learner's words the front does not already show,
in whole sentences, empty only when the front shows all of them (docs/cards.md, rule 6)."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ankigen import phrases as ph
from ankigen.model import Gap
from ankigen.parse import parse_file
from ankigen.wrote import LIMIT, SHOWN, sentence_spans, trim, what_you_wrote, words

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


# The plain definitions (before the fast paths of docs/performance.md, round 6): the fast
# `what_you_wrote`, `sentence_spans` and `words` must give exactly what these give.
_PLAIN_BREAK = re.compile(r"(?<=[.!?])\s+|[ \t]*\n\s*")


def _plain_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in _PLAIN_BREAK.finditer(text):
        if "\n" in m.group(0) and text[m.start() - 1:m.start()] not in (".", "!", "?"):
            line = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
            if ph.wraps_into(line, text[m.end():m.end() + 1]):
                continue
        if m.start() > start:
            spans.append((start, m.start()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _plain_shows(front_words: list[str], sentence: str) -> bool:
    mine = ph.WORD_RE.findall(sentence.lower())
    if not mine or len(mine) * SHOWN > len(front_words):
        return False
    blocks = difflib.SequenceMatcher(None, mine, front_words, autojunk=False).get_matching_blocks()
    return sum(b.size for b in blocks if b.size >= min(2, len(mine))) >= SHOWN * len(mine)


def _plain_what_you_wrote(front: str, text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    front_words = ph.WORD_RE.findall(front.lower())
    if not front_words:
        return trim(text)
    spans = _plain_spans(text)
    ends = [a for a, _ in spans[1:]] + [len(text)]
    return trim("".join(text[a:end] for (a, b), end in zip(spans, ends, strict=True)
                        if not _plain_shows(front_words, text[a:b])))


# Words, marks and whitespace that take the fast paths' corners: non-ASCII letters, a capital
# sigma (lowercased by context), punctuation fronts use, breaks of every kind, long lines.
_ATOMS = st.sampled_from([
    "the", "The", "model", "x.grad", "ΣΑΣ", "σ", "İstanbul", "naïve", "_x", "3", "0.5", "Ⅰ", "ß",
    "ﬁ", "—", "–", "“", "”", "’", "…", ".", "!", "?", ",", ":", "...", "(", "`", "=>", "-",
    "nn.Linear", "don't", "a", "b", "Longerword", "lower", "Upper"])
_SEPS = st.sampled_from([" ", " ", "", "\n", ". ", ".\n", ":\n", " \n ", "\n\n", "  ", "\t",
                         "\t\n\t", "\r\n", "\u00a0", "\u00a0\n", " \u2028 ", "\x0b", "? ", "!"])
_TEXT = st.lists(st.tuples(_ATOMS, _SEPS), max_size=40).map(
    lambda parts: "".join(a + s for a, s in parts))


@given(text=_TEXT, front=_TEXT, cut=st.tuples(st.integers(0, 400), st.integers(0, 400)),
       quote=st.sampled_from(["“{}”", " {} ", "x{}x", "{}", "{}?"]))
@settings(max_examples=3000, deadline=None)
def test_the_fast_paths_give_what_the_plain_definitions_give(
        text: str, front: str, cut: tuple[int, int], quote: str) -> None:
    assert sentence_spans(text) == _plain_spans(text)
    assert words(text) == ph.WORD_RE.findall(text.lower())
    assert what_you_wrote(front, text) == _plain_what_you_wrote(front, text)
    # The front quoting the text, or a piece of it, as a quoted front does.
    piece = text.strip()[min(cut):max(cut)] or text.strip()
    quoted = front[:len(front) // 2] + quote.format(piece) + front[len(front) // 2:]
    assert what_you_wrote(quoted, text) == _plain_what_you_wrote(quoted, text)


@pytest.mark.parametrize("text", [
    "ΣΑΣ’naïve", "ΣΑΣ—b", "x.grad—“Σ”", "İstanbul’s", "naïve—café", "a_b—c", "Ⅰ—ﬁ"])
def test_words_lowercase_by_context_as_the_regex_does(text: str) -> None:
    # A capital sigma lowercases to σ or ς by what stands beside it, punctuation included.
    assert words(text) == ph.WORD_RE.findall(text.lower())
