"""markdown-it-py tokens → a flat list of blocks with 1-based line ranges.

Notes are not careful CommonMark: a `---` under a line of text is a part break, not
a setext heading, and indented lines are prose or pseudo-code, not code blocks. So
the tokenizer runs with `lheading` and `code` disabled, and later stages interpret
the blocks the way the notes mean them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from markdown_it import MarkdownIt


@dataclass(frozen=True)
class Block:
    kind: str  # "heading" | "para" | "quote" | "fence" | "hr" | "list" | "table" | "html"
    start: int  # 1-based first line
    end: int  # 1-based last line (inclusive)
    text: str  # heading title, fence code, or the raw source lines
    level: int = 0  # heading level
    info: str = ""  # fence info string
    items: tuple[tuple[int, int, int], ...] = ()  # a list's items: (start, end, depth)

    def lines(self, source_lines: list[str]) -> list[tuple[int, str]]:
        return [(n, source_lines[n - 1]) for n in range(self.start, self.end + 1)]


@functools.cache
def _md(normalize: bool = True) -> MarkdownIt:
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
            title = raw.strip().lstrip("#").strip().rstrip("#").strip()
            blocks.append(Block("heading", start, end, title, level=int(tok.tag[1:])))
        elif tok.type == "paragraph_open":
            blocks.append(Block("para", start, end, raw))
        elif tok.type in _CONTAINERS:
            blocks.append(Block(_CONTAINERS[tok.type], start, end, raw))
        elif tok.type == "fence":
            # The code lines sit between the fences; an unclosed fence runs to the end.
            code_end = end - 1 if end > start and _is_fence_close(source_lines[end - 1]) else end
            code_start = min(start + 1, len(source_lines))
            blocks.append(
                Block("fence", code_start, max(code_start, code_end),
                      tok.content.rstrip("\n"), info=tok.info.strip())
            )
        elif tok.type == "hr":
            blocks.append(Block("hr", start, end, raw))
        elif tok.type == "html_block":
            blocks.append(Block("html", start, end, raw))
    return blocks


def _is_fence_close(line: str) -> bool:
    s = line.strip()
    return len(s) >= 3 and (set(s) == {"`"} or set(s) == {"~"})
