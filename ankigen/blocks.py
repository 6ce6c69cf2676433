"""Notes text → a flat list of blocks with 1-based line ranges, as markdown-it-py's block
parse gives them (for plain notes, by one walk over the lines that gives the same blocks).

Notes are not careful CommonMark: a `---` under a line of text is a part break, not
a setext heading, and indented lines are prose or pseudo-code, not code blocks. So
the tokenizer runs with `lheading` and `code` disabled, and later stages interpret
the blocks the way the notes mean them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # markdown-it loads when a file first needs it (md_rules says why)
    from markdown_it import MarkdownIt


_bare = object.__new__  # see model._bare: Block.of fills a frozen instance in one call


@dataclass(frozen=True)
class Block:
    kind: str  # "heading" | "para" | "quote" | "fence" | "hr" | "list" | "table" | "html"
    start: int  # 1-based first line
    end: int  # 1-based last line (inclusive)
    text: str  # heading title, fence code, or the raw source lines
    level: int = 0  # heading level
    info: str = ""  # fence info string
    items: tuple[tuple[int, int, int], ...] = ()  # a list's items: (start, end, depth)

    @classmethod
    def of(cls, kind: str, start: int, end: int, text: str, level: int = 0, info: str = "",
           items: tuple[tuple[int, int, int], ...] = ()) -> Block:
        """`Block(...)` for bulk use (~20 a file): equal to it, and as frozen."""
        b = _bare(cls)
        b.__dict__.update(kind=kind, start=start, end=end, text=text, level=level, info=info,
                          items=items)
        return b

    def lines(self, source_lines: list[str]) -> list[tuple[int, str]]:
        return [(n, source_lines[n - 1]) for n in range(self.start, self.end + 1)]


@functools.cache
def _md(normalize: bool = True) -> MarkdownIt:
    from markdown_it import MarkdownIt

    # Only block structure is needed here: skipping inline parsing halves the cost.
    md = MarkdownIt("commonmark").enable("table").disable(["lheading", "code", "inline", "text_join"])
    # `normalize` only rewrites CR and NUL: text without them can skip its two passes.
    return md if normalize else md.disable("normalize")


_LIST_OPEN = frozenset({"bullet_list_open", "ordered_list_open"})
_LIST_CLOSE = frozenset({"bullet_list_close", "ordered_list_close"})
_CONTAINERS = {
    "blockquote_open": "quote",
    "bullet_list_open": "list",
    "ordered_list_open": "list",
    "table_open": "table",
}


def to_blocks(text: str) -> list[Block]:
    """Top-level blocks of the document, in order, with their source lines."""
    source_lines = text.split("\n")
    simple = _plain_blocks(source_lines) if "\r" not in text and "\0" not in text else None
    return simple if simple is not None else _markdown_blocks(text, source_lines)


def _markdown_blocks(text: str, source_lines: list[str]) -> list[Block]:
    """`to_blocks` by markdown-it's block parse: any markdown."""
    blocks: list[Block] = []
    items: list[tuple[int, int, int]] = []  # of the top-level list being read
    depth = 0
    for tok in _md("\r" in text or "\0" in text).parse(text):
        if tok.type in _LIST_OPEN:
            depth += 1
        elif tok.type in _LIST_CLOSE:
            depth -= 1
            if depth == 0:
                if tok.level == 0 and blocks and blocks[-1].kind == "list":
                    blocks[-1] = replace(blocks[-1], items=tuple(items))
                items = []
        elif tok.type == "list_item_open" and tok.map is not None:
            first = tok.map[0] + 1
            items.append((first, max(first, min(tok.map[1], len(source_lines))), depth - 1))
        if tok.level != 0 or tok.map is None:
            continue
        start, end = tok.map[0] + 1, tok.map[1]
        end = max(start, min(end, len(source_lines)))
        raw = "\n".join(source_lines[start - 1 : end])
        if tok.type == "heading_open":
            title = _heading_title(raw)
            blocks.append(Block.of("heading", start, end, title, level=int(tok.tag[1:])))
        elif tok.type == "paragraph_open":
            blocks.append(Block.of("para", start, end, raw))
        elif tok.type in _CONTAINERS:
            blocks.append(Block.of(_CONTAINERS[tok.type], start, end, raw))
        elif tok.type == "fence":
            # The code lines sit between the fences; an unclosed fence runs to the end.
            code_end = end - 1 if end > start and _is_fence_close(source_lines[end - 1]) else end
            code_start = min(start + 1, len(source_lines))
            blocks.append(
                Block.of("fence", code_start, max(code_start, code_end),
                      tok.content.rstrip("\n"), info=tok.info.strip())
            )
        elif tok.type == "hr":
            blocks.append(Block.of("hr", start, end, raw))
        elif tok.type == "html_block":
            blocks.append(Block.of("html", start, end, raw))
    return blocks


_CLOSING_RE = re.compile(r"(?:^|[ \t])#+[ \t]*$")


def _heading_title(line: str) -> str:
    """An ATX heading's text as CommonMark reads it: the opening #s go, and a closing run of
    #s only when a space comes before it ("## Sub ##" → "Sub", "# C#" → "C#")."""
    text = line.strip().lstrip("#").strip()
    closing = _CLOSING_RE.search(text)
    return (text[: closing.start()] if closing else text).strip()


def _is_fence_close(line: str) -> bool:
    s = line.strip()
    return len(s) >= 3 and (set(s) == {"`"} or set(s) == {"~"})


# --- the plain-notes fast path -----------------------------------------------------------------
#
# Most recall notes are prose, headings, `>` quotes, `---` breaks and fenced code, every line
# at the margin. For those, markdown-it's block parse (most of its cost is trying every rule
# on every line) is replaced by one walk over the lines that gives the same blocks. Anything
# else in the file (a list, a table row, HTML, a reference definition, an indented line, an
# unclosed fence, a line that may continue a quote lazily) and the file goes to markdown-it
# as before: the walk only decides what it is sure of. tests/test_blocks_fast.py checks it
# against markdown-it on every fixture and on generated documents.

_HEADING_RE = re.compile(r"(#{1,6})(?:[ \t]|$)")
_HR_RE = re.compile(r"(?:-{3,}|\*{3,}|_{3,})[ \t]*$")
# What markdown-it might read as something this walk does not build: a list item, a thematic
# break with spaces ("- - -"), HTML, a reference definition; a `|` may make a table row.
_OTHER_RE = re.compile(r"[-*+](?:[ \t]|$)|\d{1,9}[.)](?:[ \t]|$)|[-*_][-*_ \t]*$|[<\[ \t]")
_FENCE_RE = re.compile(r"(`{3,}|~{3,})(.*)")


def _plain_blocks(lines: list[str]) -> list[Block] | None:
    """The blocks of a file with only margin prose, headings, quotes, breaks and closed fences,
    as markdown-it gives them; None when the file holds anything else."""
    n = len(lines)
    blocks: list[Block] = []
    i = 0
    while i < n:
        line = lines[i]
        if not line.strip(" \t"):
            i += 1
            continue
        kind = _line_kind(line)
        if kind is None:
            return None
        if kind == "fence":
            fence = _FENCE_RE.match(line)
            assert fence is not None
            marker, info = fence.group(1), fence.group(2)
            if marker[0] == "`" and "`" in info:
                return None  # markdown-it: not a fence
            j = i + 1
            while j < n:
                t = lines[j].strip(" \t")
                if len(t) >= len(marker) and t == marker[0] * len(t):
                    break
                j += 1
            if j >= n:
                return None  # unclosed: markdown-it's end-of-file rules decide
            # As `_markdown_blocks` numbers a closed fence: the code lines between the
            # fences (1-based i + 2 .. j), or the closing line when there are none.
            code_start = min(i + 2, n)
            body = "".join(ln + "\n" for ln in lines[i + 1 : j]).rstrip("\n")
            blocks.append(Block.of("fence", code_start, max(code_start, j), body,
                                info=info.strip()))
            i = j + 1
        elif kind == "heading":
            title = _heading_title(line)
            level = len(_HEADING_RE.match(line).group(1))  # type: ignore[union-attr]
            blocks.append(Block.of("heading", i + 1, i + 1, title, level=level))
            i += 1
        elif kind == "hr":
            blocks.append(Block.of("hr", i + 1, i + 1, line))
            i += 1
        elif kind == "quote":
            j = i + 1
            while j < n and lines[j].startswith(">"):
                j += 1
            if j < n and lines[j].strip(" \t"):
                return None  # a lazy continuation line, or not: markdown-it decides
            if any(ln[1:].lstrip(" \t").startswith(">") for ln in lines[i:j]):
                return None  # a quote in a quote: where an empty inner one ends, it decides
            end = j
            if not lines[j - 1][1:].strip(" \t"):
                end = _quote_end(lines, i, j)
                if end < 0:
                    return None
            blocks.append(Block.of("quote", i + 1, end, "\n".join(lines[i:end])))
            i = end
        else:  # a paragraph: up to a blank line or a line that starts another block
            j = i + 1
            while j < n and lines[j].strip(" \t"):
                after = _line_kind(lines[j])
                if after is None:
                    return None
                if after != "para":
                    break
                j += 1
            blocks.append(Block.of("para", i + 1, j, "\n".join(lines[i:j])))
            i = j
    return blocks


def _quote_end(lines: list[str], i: int, j: int) -> int:
    """Where markdown-it's map ends a quote of lines i..j-1 whose last line is empty: at j,
    unless its own parse skips empty lines at the quote's end (markdown-it's skipEmptyLines
    stops only at the document's last line, so the map takes the blank lines after the
    quote too). -1 when the quote holds more than prose: its blocks would decide."""
    empty = [not ln[1:].strip(" \t") for ln in lines[i:j]]
    if any(_line_kind(ln[1:].lstrip(" \t")) != "para" for ln, e in zip(lines[i:j], empty,
                                                                      strict=True) if not e):
        return -1
    k, m = 0, j - i
    while k < m:  # markdown-it's tokenize over the quote's prose
        while k < m and empty[k]:
            k += 1
        if k >= m:  # skipEmptyLines ran off the quote's end
            last = len(lines) - 1 if not lines[-1].strip(" \t") else len(lines)
            end = j
            while end < last and not lines[end].strip(" \t"):
                end += 1
            return end
        while k < m and not empty[k]:  # a paragraph
            k += 1
        k += 1  # the one empty line after a block is eaten without skipEmptyLines
    return j


def _line_kind(line: str) -> str | None:
    """What a non-blank line at the margin starts ("para" when nothing), None when it is
    not something `_plain_blocks` builds."""
    first = line[0]
    if first == "#":
        return "heading" if _HEADING_RE.match(line) else "para"
    if first == ">":
        return "quote"
    if first in "`~":
        return "fence" if _FENCE_RE.match(line) else "para"
    if _HR_RE.match(line):
        return "hr"
    if "|" in line or _OTHER_RE.match(line):
        return None
    return "para"
