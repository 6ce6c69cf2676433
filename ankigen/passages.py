"""Passages of reference notes and source files, and which of them match a gap: the text a
model may answer from when it words a card (ankigen/llmcards.py).

A passage is a paragraph, list item or table of a file, with its first line. Matching is by
shared content words (lowercased, crudely stemmed, identifiers split), not BM25: ankigen needs
no retrieval library, and a gap names its subject in few words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .text import read_notes

MAX_PASSAGES = 3  # per gap
PASSAGE_CHARS = 700
MIN_SHARED = 2  # content words a passage must share with a gap to be offered
WORD_RE = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+(?:\.\d+)?")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
STOPWORDS = frozenset("""a about above after again against all also am an and any are as at be because
been before being below between both but by can could did do does doing done down during each
else even ever every few for from further get gets got had has have having he her here hers him
his how i if in into is it its itself just let lets like made make makes many may me might more
most much must my no nor not now of off on once one only or other our out over own really same
say says she should so some such than that the their them then there these they thing things
this those through to too under until up upon us use used uses using very was way we were what
when where which while who whom why will with would yes you your yours""".split())


@dataclass(frozen=True)
class Passage:
    """A paragraph, list item or table of a reference note or source file."""

    file: str
    line: int  # first line
    text: str
    words: frozenset[str] = field(default=frozenset(), repr=False, compare=False)


def passages_of(path: str, text: str) -> list[Passage]:
    """Paragraphs, list items and table rows of one file, with their first line: a blank
    line, a heading or a new list item starts the next one."""
    out: list[Passage] = []
    start, buf = 0, list[str]()

    def flush() -> None:
        body = " ".join(s.strip() for s in buf).strip()
        words = content_words(body)
        if words:
            out.append(Passage(path, start, body[:PASSAGE_CHARS], frozenset(words)))
        buf.clear()

    fence = False
    for n, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip()
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            fence = not fence
        heading = not fence and stripped.startswith("#")
        item = not fence and bool(_ITEM.match(line))
        if not stripped or heading or item:
            flush()
            if heading or not stripped:
                continue
        if not buf:
            start = n
        buf.append(_ITEM.sub("", line, count=1) if item else line)
    flush()
    return out


def read_sources(paths: Sequence[Path]) -> list[tuple[str, str]]:
    """(display path, repaired text) of each `--source` file; a folder gives its markdown and
    text files. Raises InputError naming the path for anything unreadable."""
    from .build import discover

    out = []
    for p in paths:
        _, files = discover([p])
        for full, rel in files:
            shown = str(p) if p.is_file() else f"{p}/{rel}"
            out.append((shown, read_notes(full, shown).text))
    return out


def stem(word: str) -> str:
    w = word.lower().strip("'-")
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def content_words(text: str) -> list[str]:
    """Stemmed content words, identifiers split into their parts too."""
    words = []
    for m in WORD_RE.finditer(text.replace("_", " ").replace(".", " ")):
        w = m.group(0).lower()
        if w in STOPWORDS or (len(w) < 3 and not w.isdigit()):
            continue
        words.append(stem(w))
    return words


def matching(words: set[str], passages: Sequence[Passage]) -> list[Passage]:
    scored = []
    for p in passages:
        shared = len(words & p.words)
        if shared >= MIN_SHARED:
            scored.append((shared / math.sqrt(len(p.words) + 1), p.file, p.line, p))
    scored.sort(key=lambda s: (-s[0], s[1], s[2]))
    return [p for *_, p in scored[:MAX_PASSAGES]]
