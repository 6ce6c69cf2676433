"""The recall under grading: read it, take out any tutor marks, and split it into claims.

A session that already carries marks (a re-grade, or a labelled session in `grader eval`)
is graded without them: assessment lines and their `=>` / `>` tails are the tutor's, not
the learner's. Everything else is kept verbatim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ankigen import phrases as ph
from ankigen.blocks import to_blocks
from ankigen.errors import InputError
from ankigen.model import Document, Span
from ankigen.parse import MARK_RE, parse_text
from ankigen.text import read_notes

from .errors import RecallError
from .model import Claim
from .retrieve import content_tokens

_INLINE_TUTOR_RE = re.compile(rf"\s*(?:{MARK_RE.pattern})\ufe0f?\s*=>.*$")
_INLINE_MARK_RE = re.compile(rf"(?:{MARK_RE.pattern})\ufe0f?\s?")
# A sentence ends at . ! ? before a capital or the end, not inside `torch.nn.Module`.
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?=[\"“'(\[]?[A-Z0-9])")
_META_RE = re.compile(
    r"^\s*(?:(?:so|ok|okay|now|well|right|alright|basically|and)[,\s]+)*(?:let'?s|i'?ll|i will|"
    r"i'm going to|i am going to|here'?s|here is|that'?s (?:it|all)|moving on|next)\b|"
    r"\blet'?s\s+(?:integrate|recall|continue|move|go|talk|start|recap|review)\b",
    re.I,
)
_MIN_CLAIM_TOKENS = 3
# Text that speaks to the grader rather than about the subject: never supported, and a
# part holding it never gets 🟢.
_INSTRUCTION_RE = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|prompt|rules)\b|"
    r"\bmark\b.{0,30}\b(?:green|correct|right|supported|🟢)|\bsystem prompt\b|"
    r"\byou are (?:now|a)\b.{0,40}\b(?:grader|assistant|model|examiner)\b",
    re.I | re.S,
)


@dataclass(frozen=True)
class Recall:
    path: str
    text: str  # the recall as graded: repaired, tutor marks removed
    doc: Document  # ankigen's parse of `text`, always as a recall session
    stripped: int  # how many tutor lines were taken out

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")


def load_recall(path: Path) -> Recall:
    shown = str(path)
    try:
        text = read_notes(path, shown).text
    except InputError as exc:
        raise RecallError(exc.bare, path=exc.path, line=exc.line) from None
    return recall_from_text(text, shown)


def recall_from_text(text: str, path: str = "<recall>") -> Recall:
    marked = parse_text(text, path, kind="recall")
    text, removed = strip_marks(text, marked)
    doc = parse_text(text, path, kind="recall")
    if not any(_claim_lines(text, doc)) and not doc.code_blocks:
        raise RecallError("empty recall: no sentences or code to grade", path=path)
    return Recall(path, text, doc, removed)


def strip_marks(text: str, doc: Document) -> tuple[str, int]:
    """The recall without its assessments: their lines and tails go, inline tutor remarks
    (`… 🟡 => feedback`) are cut from the line, a learner's own inline mark loses its emoji."""
    lines = text.split("\n")
    drop: set[int] = set()
    for a in doc.assessments:
        if a.inline:
            continue
        drop.add(a.line)
        drop.update(tail_lines(lines, a.line))
    out: list[str] = []
    edited = 0
    for n, line in enumerate(lines, start=1):
        if n in drop:
            continue
        if MARK_RE.search(line):
            new = _INLINE_TUTOR_RE.sub("", line)
            new = _INLINE_MARK_RE.sub("", new).rstrip() if new == line else new.rstrip()
            edited += new != line
            line = new
        out.append(line)
    return "\n".join(_squeeze(out)), len(drop) + edited


def tail_lines(lines: list[str], line: int) -> list[int]:
    """The `=>` lines and the first `>` quote after an assessment line (blank lines between
    them belong to the tail), as ankigen's parser reads them."""
    tail: list[int] = []
    quoted = False
    n = line + 1
    pending: list[int] = []
    while n <= len(lines):
        s = lines[n - 1].strip()
        if not s:
            pending.append(n)
        elif s.startswith(ph.ARROW):
            tail += pending + [n]
            pending = []
        elif s.startswith(">") and not quoted:
            while n <= len(lines) and lines[n - 1].strip().startswith(">"):
                pending.append(n)
                n += 1
            tail += pending
            pending = []
            quoted = True
            continue
        else:
            break
        n += 1
    return tail


def _squeeze(lines: list[str]) -> list[str]:
    """No more than one blank line in a row where tutor lines were taken out."""
    out: list[str] = []
    for line in lines:
        if not line.strip() and out and not out[-1].strip():
            continue
        out.append(line)
    return out


def _claim_lines(text: str, doc: Document) -> list[tuple[int, int, str]]:
    """(part, line, sentence) for every recall sentence worth judging."""
    lines = text.split("\n")
    code = {n for c in doc.code_blocks for n in range(c.span.start, c.span.end + 1)}
    out: list[tuple[int, int, str]] = []
    for b in to_blocks(text):
        if b.kind not in ("para", "list", "table", "quote"):
            continue
        part = next((p.index for p in doc.parts if b.start in p.span), None)
        if part is None:
            continue
        for n in range(b.start, b.end + 1):
            if n in code:
                continue
            for sentence in _sentences(lines[n - 1]):
                if _is_claim(sentence):
                    out.append((part, n, sentence))
    return out


def _sentences(line: str) -> list[str]:
    line = re.sub(r"^\s*(?:[-*+]|\d+[.)]|>)\s+", "", line)
    line = line.split(ph.ARROW)[0]
    return [s.strip() for s in _SENTENCE_END_RE.split(line) if s.strip()]


def _is_claim(sentence: str) -> bool:
    """A statement about the subject, not a question, a plan or a topic announcement."""
    if sentence.endswith("?") or _META_RE.search(sentence) or is_instruction(sentence):
        return False
    if sentence.endswith(":") or (len(sentence.split()) <= 10 and any(
            pat.search(sentence) for pat in ph.TOPIC_PATTERNS[:2])):
        return False  # "So, batch gradient descent.": the part's topic, not a claim
    if ph.FORGOT_RE.search(sentence) or ph.LOOKED_UP_RE.search(sentence):
        return False
    return len(content_tokens(sentence)) >= _MIN_CLAIM_TOKENS


def sentence_claims(recall: Recall) -> list[Claim]:
    """Offline claims: the recall's sentences, each with its part and line."""
    return [Claim(f"c{i + 1}", part, line, text)
            for i, (part, line, text) in enumerate(_claim_lines(recall.text, recall.doc))]


def is_instruction(text: str) -> bool:
    return bool(_INSTRUCTION_RE.search(text))


def part_text(recall: Recall, span: Span) -> str:
    return "\n".join(recall.lines[span.start - 1 : span.end])
