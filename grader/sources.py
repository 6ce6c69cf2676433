"""Source material → passages with line numbers, and the key points each section makes.

Markdown is chunked on ankigen's token-based blocks (a heading starts a section; each
paragraph, list item, code block and table is a passage). Plain text is chunked into
paragraphs, with short unpunctuated lines standing alone taken as headings, as chapter text
pasted from a book or PDF usually has them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ankigen.blocks import to_blocks
from ankigen.errors import InputError
from ankigen.model import Span
from ankigen.text import read_notes

from .errors import SourceError
from .model import KeyPoint, Passage
from .retrieve import vocabulary

SOURCE_SUFFIXES = (".md", ".markdown", ".mdown", ".txt")
SEP = " › "

# Spans are matched pairwise from the left, then filtered: a length bound inside the
# pattern would pair the closing tick of `X` with the opening tick of the next span.
_BOLD_RE = re.compile(r"\*\*(?P<a>[^*\n]+?)\*\*|__(?P<b>[^_\n]+?)__")
_CODE_RE = re.compile(r"`(?P<c>[^`\n]+)`")
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][\w.]*(?:\(\w*\))?$")
_ITEM_RE = re.compile(r"^(?P<indent>\s*)(?:[-*+]|\d{1,3}[.)])\s+")
_LINK_RE = re.compile(r"\[([^\]]*)\]\([^)]*\)")
# Headings that name no subject: never an omission ("you left out Notes").
_GENERIC = re.compile(
    r"^(?:notes?|summary|overview|introduction|intro|conclusion|contents|references|"
    r"exercises?|questions?|answers?|debrief|goal|tips|examples?|appendix|"
    r"(?:chapter|lesson|part|section|week|lecture)\s*[\w.]*)$",
    re.I,
)


@dataclass(frozen=True)
class SourceSet:
    files: tuple[str, ...]
    passages: tuple[Passage, ...]
    points: tuple[KeyPoint, ...]

    @cached_property
    def words(self) -> frozenset[str]:
        """The content words the sources use: a short form they use as a word of its own
        is not short for a longer one (`retrieve.same_word`)."""
        return vocabulary(self.passages)


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files named directly, and the source files inside named folders (sorted)."""
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise SourceError("no such file or directory", path=str(path))
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.suffix.lower() in SOURCE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise SourceError("no .md or .txt files in this folder", path=str(path))
            files.extend(found)
        else:
            files.append(path)
    return files


def load_sources(paths: Sequence[Path]) -> SourceSet:
    if not paths:
        raise SourceError("no sources given: pass at least one --source")
    passages: list[Passage] = []
    for file in expand(paths):
        shown = str(file)
        if file.suffix.lower() not in SOURCE_SUFFIXES:
            raise SourceError(f"not a source we read (expected .md or .txt, got "
                              f"{file.suffix or 'no extension'})", path=shown)
        try:
            text = read_notes(file, shown).text
        except InputError as exc:
            raise SourceError(exc.bare, path=exc.path, line=exc.line) from None
        chunks = _plain_chunks(text) if file.suffix.lower() == ".txt" else _markdown_chunks(text)
        found = [c for c in chunks if c[3].strip()]
        if not found:
            raise SourceError("empty source: no text to grade against", path=shown)
        for span, section, kind, body in found:
            passages.append(Passage(len(passages), shown, span, section or file.stem, kind, body,
                                    _terms(body, kind)))
    return SourceSet(tuple(dict.fromkeys(p.file for p in passages)), tuple(passages),
                     tuple(key_points(passages)))


def _markdown_chunks(text: str) -> list[tuple[Span, str, str, str]]:
    lines = text.split("\n")
    heads: list[tuple[int, str]] = []  # (level, title) stack
    out: list[tuple[Span, str, str, str]] = []
    for b in to_blocks(text):
        if b.kind == "heading":
            heads = [h for h in heads if h[0] < b.level] + [(b.level, _plain(b.text))]
            continue
        section = SEP.join(t for _, t in heads)
        if b.kind == "para":
            out.append((Span(b.start, b.end), section, "prose", b.text))
        elif b.kind == "fence":
            out.append((Span(b.start, b.end), section, "code", b.text))
        elif b.kind == "table":
            out.append((Span(b.start, b.end), section, "table", b.text))
        elif b.kind == "quote":
            body = "\n".join(re.sub(r"^\s*>\s?", "", ln) for ln in b.text.split("\n"))
            out.append((Span(b.start, b.end), section, "prose", body))
        elif b.kind == "list":
            out.extend((span, section, "item", body) for span, body in _items(lines, b.start, b.end))
    return out


def _items(lines: list[str], start: int, end: int) -> list[tuple[Span, str]]:
    """A list block split into its top-level items (nested items stay with their parent)."""
    base: int | None = None
    items: list[tuple[int, list[str]]] = []
    for n in range(start, end + 1):
        line = lines[n - 1]
        m = _ITEM_RE.match(line)
        if m and (base is None or len(m.group("indent")) <= base):
            base = len(m.group("indent")) if base is None else base
            items.append((n, [line[m.end():]]))
        elif items:
            items[-1][1].append(line.strip())
    out = []
    for n, body in items:
        while len(body) > 1 and not body[-1]:
            body.pop()  # the blank line before the next item is not part of this one
        out.append((Span(n, n + len(body) - 1), " ".join(x for x in body if x)))
    return out


def _plain_chunks(text: str) -> list[tuple[Span, str, str, str]]:
    lines = text.split("\n")
    out: list[tuple[Span, str, str, str]] = []
    section = ""
    n = 0
    while n < len(lines):
        if not lines[n].strip():
            n += 1
            continue
        start = n
        while n < len(lines) and lines[n].strip():
            n += 1
        para = [ln.strip() for ln in lines[start:n]]
        if len(para) == 1 and _looks_like_heading(para[0]):
            section = para[0]
            continue
        out.append((Span(start + 1, n), section, "prose", " ".join(para)))
    return out


def _looks_like_heading(line: str) -> bool:
    return (len(line) <= 70 and not line.endswith((".", ",", ";", ":", "?", "!"))
            and line[:1].isupper() and len(line.split()) <= 10)


def _plain(text: str) -> str:
    """A heading as text: links, emphasis and code ticks gone, a name's own underscores kept
    ("## `weights_only` and safety", "## weights_only and safety" → "weights_only and
    safety", not "weightsonly …", which no recall or tutor ever writes)."""
    text = _LINK_RE.sub(r"\1", text)
    pieces = _TICKED_RE.split(text)
    return "".join(p[1:-1] if n % 2 else _EMPHASIS_RE.sub("", p)
                   for n, p in enumerate(pieces)).strip()


_TICKED_RE = re.compile(r"(`[^`]*`)")
_EMPHASIS_RE = re.compile(r"\*+|`+|(?<!\w)_+|_+(?!\w)")


def _terms(body: str, kind: str) -> tuple[str, ...]:
    if kind == "code":
        return ()
    bold = [(m.group("a") or m.group("b")).strip() for m in _BOLD_RE.finditer(body)]
    code = [m.group("c").strip() for m in _CODE_RE.finditer(body)]
    found = [t for t in bold if 2 <= len(t) <= 60]
    found += [t for t in code if 2 <= len(t) <= 40 and _IDENTIFIER_RE.match(t)]
    return tuple(dict.fromkeys(found))


# "Centroid Initialization and K-Means++", "DBSCAN versus K-Means": a heading naming two
# things names each; a recall may cover one and leave out the other.
_HEADING_JOIN_RE = re.compile(r"\s*(?:,|:|&|\band\b|\bversus\b|\bvs\b\.?)\s*", re.I)


def heading_terms(heading: str) -> list[str]:
    """A heading's subject, and when it joins several, each of them."""
    if not heading or _GENERIC.match(heading) or len(heading.split()) > 6:
        return []
    pieces = [x for x in _HEADING_JOIN_RE.split(heading) if len(x) >= 2 and not _GENERIC.match(x)]
    return [heading] + (pieces if len(pieces) > 1 else [])


def key_points(passages: Sequence[Passage]) -> list[KeyPoint]:
    """Per section: its heading's subject (and each thing a heading joins), then the bold
    and code terms its passages define. A term both joined in the heading and defined in
    bold is the bold one, with the passage that defines it."""
    points: list[KeyPoint] = []
    seen: set[tuple[str, str]] = set()
    defined = {(p.section, t.lower()) for p in passages for t in p.terms}
    for p in passages:
        heading = p.section.split(SEP)[-1]
        joined = heading_terms(heading)
        candidates: list[tuple[str, str]] = [
            (t, "heading") for n, t in enumerate(joined)
            if n == 0 or (p.section, t.lower()) not in defined]
        candidates += [(t, "code" if f"`{t}`" in p.text else "bold") for t in p.terms]
        for term, origin in candidates:
            key = (p.section, term.lower())
            if key not in seen:
                seen.add(key)
                points.append(KeyPoint(term, p.section, p.id, origin))
    return points
