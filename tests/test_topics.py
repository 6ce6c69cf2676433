"""Topics, defined once (ankigen/topics.py): cards and the grader name a part the same way."""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import pytest
from anki.collection import Collection
from anki_helpers import import_apkg, rendered

from ankigen import topics
from ankigen.build import build
from ankigen.parse import parse_file
from grader.recall import load_recall

FIXTURES = Path(__file__).parent / "fixtures" / "topics"
SESSION = FIXTURES / "session-goal-headings.md"


def _text(h: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", h.split("</style>")[-1]))


@pytest.mark.parametrize(("raw", "shown"), [
    ("**Encoder** and `decoder`", "Encoder and decoder"),
    ("[[Attention#Scores|attention scores]] explained[^1]", "attention scores explained"),
    ("[[Attention#Scores]] in depth", "Attention › Scores in depth"),  # as the card shows it
    ("Pooling <b>layers</b>:", "Pooling layers"),
    ("__Dropout__ and *weight decay*", "Dropout and weight decay"),
])
def test_plain_reads_a_heading_as_text(raw, shown):
    assert topics.plain(raw) == shown


def test_parts_of_a_goal_debrief_notes_session_never_take_the_goal_heading():
    doc = parse_file(SESSION, "session-goal-headings.md")
    assert [p.topic for p in doc.parts] == [
        "Recurrent nets read a sequence one step at …",  # no announcement: its first sentence
        "Long sequences make the gradients vanish or explode",
        "Encoder and decoder",  # the heading that opens it, as text
    ]
    by_line = {g.line: g for g in doc.gaps}
    assert by_line[14].topic == "Recurrent nets read a sequence one step at …"
    assert by_line[19].topic == "Long sequences make the gradients vanish or explode"
    # under `### Teacher forcing`, deep in part 3: the nearest heading, not the part's first
    assert by_line[33].topic == "Teacher forcing"
    assert by_line[33].prompt.startswith("Teacher forcing — you wrote: “The encoder reads")


def test_a_part_opening_with_its_mark_is_named_by_the_learner_s_words():
    assert topics.part_topic(None, "🟢 => good.\n=> move on\nAttention weighs every token.",
                             None) == "Attention weighs every token"
    assert topics.part_topic("Notes", "", None) == "Code"  # a part of code alone
    # openings no announcement pattern reads: a short phrase before the first comma
    assert topics.part_topic(None, "Ok, kernels, the small weight grids. They slide.",
                             None) == "Kernels"
    assert topics.part_topic(None, "So, parameter groups, which is how you give different "
                             "parts different learning rates.", None) == "Parameter groups"


def test_the_grader_sends_each_part_under_its_own_topic():
    recall = load_recall(SESSION)
    assert [p.topic for p in recall.doc.parts] == [
        p.topic for p in parse_file(SESSION, str(SESSION)).parts]
    assert all(p.topic not in ("Goal", "Debrief", "Notes") for p in recall.doc.parts)
    assert topics.topic_at(recall.doc, 33) == "Teacher forcing"


def test_labelled_sessions_keep_their_part_topics():
    """Regression guard on the grader's labelled set: each part is named by its own opening."""
    doc = load_recall(Path(__file__).parent / "fixtures" / "labelled" / "cnn" / "recall.md").doc
    assert [p.topic for p in doc.parts] == [
        "Convolutional neural networks", "Convolutional layer itself",
        "A tiny CNN for 28x28 grayscale digits", "Pooling", "How a typical CNN is put together",
        "Famous architectures"]


def test_cards_show_the_topic_once_as_plain_text(tmp_path):
    vault = tmp_path / "vault"
    vault.mkdir()
    shutil.copy(SESSION, vault / SESSION.name)
    out = tmp_path / "deck.apkg"
    result = build([vault], out, checks=None, now=1_000)
    assert result.notes == 3
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, out).new == 3
        cards = [(_text(q), _text(a)) for _, q, a in rendered(col)]
    finally:
        col.close()
    teacher = next(a for q, a in cards if "Teacher forcing —" in q)
    assert "session-goal-headings.md › Encoder and decoder › Teacher forcing" in teacher
    for q, a in cards:
        assert "**" not in q + a and "Goal" not in q + a


def test_a_source_line_names_each_place_once():
    assert topics.source_trail("notes.md", "**Shapes** and views", "Shapes and views") == \
        "notes.md › Shapes and views"
    assert topics.source_trail("notes.md", "Notes", "Pooling") == "notes.md › Notes › Pooling"


def test_headed_reference_notes_take_the_nearest_heading(tmp_path):
    pytest.importorskip("torch")
    from ankigen.checks import build_hook

    vault = tmp_path / "vault"
    vault.mkdir()
    shutil.copy(FIXTURES / "reference-headed.md", vault / "reference-headed.md")
    out = tmp_path / "deck.apkg"
    result = build([vault], out, checks=build_hook("cpu"), now=1_000)
    assert result.notes == 1
    col = Collection(str(tmp_path / "c.anki2"))
    try:
        assert import_apkg(col, out).new == 1
        [(_, q, a)] = rendered(col)
    finally:
        col.close()
    assert _text(q).strip().startswith("Shapes and views — your notes claim this prints")
    assert "reference-headed.md › Shapes and views" in _text(a)
    assert "Shapes and views › Shapes and views" not in _text(a) and "**" not in _text(a)
    doc = parse_file(vault / "reference-headed.md", "reference-headed.md")
    assert topics.topic_at(doc, 16) == "Shapes and views"
    assert topics.topic_at(doc, 8) == "Creating tensors"


def test_plain_skips_the_inline_parse_only_where_it_would_change_nothing():
    # `plain` returns text without inline syntax as it is (spaces folded); this holds it to
    # what markdown-it's parse gives, over every other ASCII character, Unicode spaces,
    # marks, arrows, and headings and entities' neighbours (`#`, `:`, `>`, `=`, `;`).
    import random
    import string

    rng = random.Random(13)
    alphabet = [c for c in string.printable + "\u00a0\u2003\u3000🟡🔴—é"
                if c not in topics._INLINE_SYNTAX] + ["=>", "  ", "a:", "# ", "1. "]
    samples = ["", " ", "::", "Pooling:", "  So, chapter 3 is about RNNs.  ", "a\tb\x0bc",
               *("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
                 for _ in range(3000))]
    for s in samples:
        assert topics._INLINE_SYNTAX.isdisjoint(s)
        assert topics.plain(s) == topics.parsed_plain(s), repr(s)
