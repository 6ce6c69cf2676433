"""The labelled sets that `grader eval` is measured on keep the conventions of their README.

A broken fixture here would silently change the reported agreement, so every session of
every split (tuning `labelled/`, held-out `labelled-heldout/`, validation
`labelled-validation/`, `labelled-validation-2/` and `labelled-validation-3/`) is loaded
the way the README's recount does and checked: one closing mark per part, at least six
parts, every mark in the text parsed as an assessment of the part it sits in, every `>`
quote verbatim in a source, every "you left out X" naming a heading, bold term or inline
code of a source. Counts are pinned so a session that stops parsing shows up.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from ankigen.model import Mark
from ankigen.parse import parse_file

FIXTURES = Path(__file__).parent / "fixtures"
SPLITS = {"labelled": 9, "labelled-heldout": 4, "labelled-validation": 4, "labelled-validation-2": 4,
          "labelled-validation-3": 4}
RANK = {Mark.GREEN: 0, Mark.YELLOW: 1, Mark.RED: 2}
# X runs to the end of the sentence; a dot inside a name (`torch.inference_mode()`) is kept.
LEFT_OUT = re.compile(r"you (?:left out|skipped|forgot|didn't mention) (?:the )?((?:[^.;,\n]|\.(?=\S))+)")


def _sessions(split: str) -> list[Path]:
    return sorted(p.parent for p in (FIXTURES / split).glob("*/recall.md"))


def _labels(session: Path) -> list[Mark]:
    doc = parse_file(session / "recall.md", include_green=True)
    return [max((a.mark for a in part.assessments), key=RANK.__getitem__) for part in doc.parts]


def _recall_text(session: Path) -> str:
    recall = (session / "recall.md").read_text(encoding="utf-8")
    if "ðŸ" in recall:  # stored as mojibake on purpose; its quotes hold no repaired character
        recall = recall.encode("cp1252", errors="ignore").decode("utf-8", errors="ignore")
    return recall


def _sources(session: Path) -> list[str]:
    return [f.read_text(encoding="utf-8") for f in sorted((session / "sources").iterdir())]


def _named_terms(source: str, is_txt: bool) -> set[str]:
    """Headings, **bold** terms and `inline code` (outside fences) of one source, lower-cased."""
    lines = [ln for ln in source.splitlines() if not ln.startswith("```")]
    terms = {h.strip() for h in re.findall(r"^#+\s*(.+)$", source, re.M)}
    terms |= {b for ln in lines for b in re.findall(r"\*\*(.+?)\*\*", ln)}
    terms |= {c for ln in lines for c in re.findall(r"`([^`]+)`", ln)}
    if is_txt:  # a plain-text chapter's headings are short stand-alone title lines
        blocks = [b.strip() for b in re.split(r"\n\s*\n", source)]
        terms |= {b for b in blocks if "\n" not in b and len(b) < 60 and not b.endswith(".")}
    return {t.lower() for t in terms}


@pytest.mark.parametrize("split", SPLITS)
def test_each_split_has_its_sessions_each_with_six_marked_parts(split):
    sessions = _sessions(split)
    assert len(sessions) == SPLITS[split], [s.name for s in sessions]
    for session in sessions:
        labels = _labels(session)
        assert len(labels) >= 6, session.name
        assert list((session / "sources").iterdir()), session.name


def test_the_splits_share_no_topic_and_hold_the_counted_parts():
    names = {split: {s.name for s in _sessions(split)} for split in SPLITS}
    assert not names["labelled"] & names["labelled-heldout"]
    assert not names["labelled-validation"] & (names["labelled"] | names["labelled-heldout"])
    assert not names["labelled-validation-2"] & (
        names["labelled"] | names["labelled-heldout"] | names["labelled-validation"])
    assert not names["labelled-validation-3"] & (
        names["labelled"] | names["labelled-heldout"] | names["labelled-validation"]
        | names["labelled-validation-2"])
    counts = {split: Counter(m for s in _sessions(split) for m in _labels(s)) for split in SPLITS}
    assert counts["labelled-heldout"] == {Mark.GREEN: 8, Mark.YELLOW: 8, Mark.RED: 8}
    assert counts["labelled-validation"] == {Mark.GREEN: 8, Mark.YELLOW: 8, Mark.RED: 8}
    assert counts["labelled-validation-2"] == {Mark.GREEN: 8, Mark.YELLOW: 8, Mark.RED: 8}
    assert counts["labelled-validation-3"] == {Mark.GREEN: 8, Mark.YELLOW: 8, Mark.RED: 8}
    assert counts["labelled"] == {Mark.GREEN: 17, Mark.YELLOW: 19, Mark.RED: 18}


@pytest.mark.parametrize("session", [s for split in SPLITS for s in _sessions(split)],
                         ids=lambda s: f"{s.parent.name}/{s.name}")
def test_every_mark_is_an_assessment_of_the_part_it_sits_in(session):
    # the fixtures hold no "---" line inside code, so the raw parts are the text between them
    raw_parts = re.split(r"(?m)^---$", _recall_text(session).split("# Notes", 1)[1])
    in_text = [sum(part.count(mark) for mark in "🟢🟡🔴") for part in raw_parts]
    parsed = [len(part.assessments) for part in parse_file(session / "recall.md", include_green=True).parts]
    assert parsed == in_text, session.name


@pytest.mark.parametrize("session", [s for split in SPLITS for s in _sessions(split)],
                         ids=lambda s: f"{s.parent.name}/{s.name}")
def test_quotes_are_verbatim_and_omissions_name_a_source_term(session):
    sources = _sources(session)
    flat = [" ".join(s.split()) for s in sources]
    recall = _recall_text(session)
    quotes = [" ".join(ln[2:].split()) for ln in recall.splitlines() if ln.startswith("> ")]
    assert quotes, session.name
    for quote in quotes:
        assert any(quote in s for s in flat), f"{session.name}: not in a source: {quote}"
    names = set().union(*(_named_terms(s, f.suffix == ".txt") for s, f in
                          zip(sources, sorted((session / "sources").iterdir()), strict=True)))
    left_out = [m.group(1).strip().lower() for m in LEFT_OUT.finditer(recall)]
    yellow = sum(1 for m in _labels(session) if m is Mark.YELLOW)
    assert len(left_out) >= yellow, session.name
    for term in left_out:
        # "appears as a heading": `axis orientation` is in "Sensitivity to Axis Orientation"
        assert any(term in name for name in names), f"{session.name}: '{term}' is in no heading, bold term or code"
