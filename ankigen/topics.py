"""What a part, and a gap inside it, is about: one definition for cards and the grader.

A gap's topic is the nearest heading above it *within its part*, as plain text; a gap
with no heading above it in its part takes the part's topic. A part's topic is the
heading that opens it, else the topic its opening sentences announce ("So, chapter 12
is about pooling."), else its chapter, else its first sentence, cut short. Headings that
only give a session its shape (`# Goal`, `# Debrief`, `# Notes`, `### Questions` …) are
never a topic, and a part never borrows a heading from another part or the file's title:
that is how every part of a session came to be called "Goal".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import phrases as ph
from .md_rules import reduce_wikilinks
from .model import Document, Section, Span
from .text import EMOJI_MARK

if TYPE_CHECKING:  # markdown-it loads when a topic first needs it (md_rules says why)
    from markdown_it import MarkdownIt

# Headings that name a session's sections rather than a subject (NOTES-FORMAT.md).
STRUCTURAL = frozenset({"goal", "goals", "debrief", "notes", "recall", "questions", "answers",
                        "summary of the session", "session"})
_FOOTNOTE_RE = re.compile(r"\[\^[^\]]*\]")
_SPACE_RE = re.compile(r"\s+")
_OPENING_WORDS = 8
_PHRASE_WORDS = 5
_LEAD_RE = re.compile(r"^(?:(?:so|ok|okay|now|next|right|well|alright|and)\b[,\s]*)+", re.I)


# What markdown-it's commonmark inline rules start at (escape, code span, emphasis, link,
# image, autolink/HTML, entity), line breaks, and the CR/NUL its normaliser rewrites.
_INLINE_SYNTAX = frozenset("\\`*_[]!<&~\n\r\0")


@functools.cache
def _inline_md() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark")


@functools.lru_cache(maxsize=4096)  # a vault repeats its headings
def plain(text: str) -> str:
    """A heading's (or any inline markdown's) readable text: `**Pooling** in `nn`` → `Pooling
    in nn`. Wiki-links read as on a card (md_rules.wiki_text); footnote references and
    HTML tags go."""
    if _INLINE_SYNTAX.isdisjoint(text):
        # No character any CommonMark inline rule (or the normaliser) acts on: the parse
        # would give the text back as one token, so skip it (a cold build parses every
        # part's opening lines; the fuzz test in test_topics.py holds the two equal).
        return _SPACE_RE.sub(" ", text).strip().rstrip(":").strip()
    return parsed_plain(text)


def parsed_plain(text: str) -> str:
    """`plain` by way of markdown-it's inline parse, whatever the text holds."""
    # The cards' own reading of a wiki-link (alias, else "Note › Heading"), so a topic and
    # the field it came from say the same.
    text = _FOOTNOTE_RE.sub("", reduce_wikilinks(text))
    out: list[str] = []
    for tok in _inline_md().parseInline(text):
        for child in tok.children or ():
            if child.type in ("text", "code_inline"):
                out.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                out.append(" ")
            elif child.type == "image":
                out.append(child.content)  # its alt text
    return _SPACE_RE.sub(" ", "".join(out)).strip().rstrip(":").strip()


def is_structural(title: str) -> bool:
    return plain(title).lower() in STRUCTURAL


def headings_in(sections: Sequence[Section], span: Span) -> tuple[tuple[int, str], ...]:
    """(line, plain title) of each heading inside `span` that names a subject."""
    return tuple((s.line, t) for s in sections if s.line in span
                 for t in (plain(s.title),) if t and t.lower() not in STRUCTURAL)


def part_topic(opening_heading: str | None, opening: str, chapter: str | None) -> str:
    """A part's topic from the heading that opens it, its opening lines, or its chapter.

    `opening` is the part's first lines as written; the result is never empty while the
    part has words (a part of code alone is called "Code")."""
    if opening_heading:
        heading = plain(opening_heading)
        if heading and heading.lower() not in STRUCTURAL:
            return heading
    text = plain_lines(opening)
    announced = ph.topic_from(text)
    if announced:
        return announced
    if chapter:
        return f"Chapter {chapter}"
    own = (line for line in text.split("\n")  # the learner's words, not a mark or its `=>`
           if line.strip() and not line.lstrip().startswith(ph.ARROW)
           and not any(m in line for m in EMOJI_MARK))
    first = _LEAD_RE.sub("", next((s for line in own for s in ph.sentences(line)), ""))
    # "So, recurrent networks, for sequences." announces "Recurrent networks": a short
    # phrase before the first comma is the subject; else the sentence's first words.
    head = first.split(",", 1)[0].strip(" .;:!?")
    if "," in first and 0 < len(head.split()) <= _PHRASE_WORDS:
        return head[:1].upper() + head[1:]
    words = first.split()
    if not words:
        return "Code"
    cut = " ".join(words[:_OPENING_WORDS]).rstrip(" ,;:.")
    cut = cut[:1].upper() + cut[1:]
    return cut + (" …" if len(words) > _OPENING_WORDS else "")


def plain_lines(text: str) -> str:
    return "\n".join(plain(line) for line in text.split("\n"))


def gap_topic(headings: Sequence[tuple[int, str]], line: int, part: str) -> str:
    """The nearest heading at or above `line` among the part's own headings, else the
    part's topic. `headings` are in file order, as `headings_in` gives them."""
    nearest = part
    for at, title in headings:
        if at > line:
            break
        nearest = title
    return nearest


def topic_at(doc: Document, line: int) -> str:
    """The topic of whatever sits at `line` of a parsed file: for a recall session the
    nearest heading above it in its part, else the part's topic; for a reference note
    (no parts) the nearest heading above it, else the file's title."""
    part = next((p for p in doc.parts if line in p.span), None)
    if part is not None:
        return gap_topic(headings_in(doc.sections, part.span), line, part.topic)
    above = [s.title for s in doc.sections if s.line <= line and not is_structural(s.title)]
    return plain(above[-1] if above else doc.title)


def source_trail(name: str, section: str, topic: str) -> str:
    """Where a card came from: `file › section › topic`, each once, as plain text."""
    trail: list[str] = []
    for x in (name, plain(section) if section else "", plain(topic) if topic else ""):
        if x and x not in trail:
            trail.append(x)
    return " › ".join(trail)
