"""Which 🟢/🟡/🔴 are a learner's marks, and which files are recall sessions.

Real vaults use the same emoji as data: a legend (`- **Apples** represented as red dots
(🔴).`), a status table full of 🟡 cells, a heading, a count (`13 🟢, 15 🟡`), a code span.
NOTES-FORMAT.md's marks have two shapes, and only those count (docs/cards.md, "Which files
make cards"):

- an **assessment**: the mark opens a line of prose, then feedback (`🟡 => you skipped
  padding`; in a list item only with `=>`);
- an **inline marker** inside a sentence, then `=>` or a remark in parentheses that says
  what was forgotten or doubted (`initialization, 🟡 (forgot the rest) momentum?..`,
  `🟡 (can't recall the second one)`; a status's `🟡 (flaky)` is data).

Never a mark: in a heading, a table, a code span, an HTML block, alone in parentheses
(`(🔴)`), next to another mark (`🟢 🔴 🟡`), or followed by a legend's separator
(`🔴: blocked`, `**🟢**: accurate`, `🟡 = partly`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .blocks import Block
from .text import EMOJI_MARK

_MARKS = "".join(EMOJI_MARK)
MARK_RE = re.compile(f"[{_MARKS}]")
_ITEM_RE = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])(?:\s+|$)")
_LEAD_RE = re.compile(r"^\s*(?:(?:[-*+]|\d{1,9}[.)])\s+|>\s*)?(?:\*\*|__|\*|_)?\s*$")
_LEGEND = frozenset(":=|,;/)<>-–—+")
_REMARK_RE = re.compile(r"\([^)]*(?:forg|recall|remember|no idea|not sure|unsure|the rest|"
                        r"what else|looked|(?:second|third|other) one|\?)[^)]*\)", re.I)


def mark_in(line: str) -> int:
    """Where the first mark of a source line of prose or a list item is, or -1."""
    if not MARK_RE.search(line):
        return -1
    listed = bool(_ITEM_RE.match(line))
    for m in MARK_RE.finditer(line):
        if _reads_as_mark(line, m.start(), m.end(), listed):
            return m.start()
    return -1


def _reads_as_mark(line: str, start: int, end: int, listed: bool) -> bool:
    before = line[:start]
    if before.count("`") % 2:  # inside a code span
        return False
    prev = before.rstrip().rstrip("*_").rstrip()
    after = line[end:].lstrip("\ufe0f").lstrip("*_").lstrip()
    if (prev and prev[-1] in _MARKS) or (after and after[0] in _MARKS):
        return False  # a run of marks: a legend or a count
    if after.startswith("=>"):
        return True
    if prev.endswith("("):
        return False  # `(🔴)`: a legend's colour
    if after.startswith("("):
        return bool(_REMARK_RE.match(after))  # `🟡 (forgot the rest)`, not `🟡 (flaky)`
    if listed:
        return False  # a list item's emoji with no `=>`: a legend or a status
    if _LEAD_RE.match(before):  # opens a line of prose: an assessment
        return not after or after[0] not in _LEGEND
    return False  # inside a sentence, followed by words: data


def marked(blocks: Sequence[Block], source_lines: list[str]) -> bool:
    """Whether any line of prose or list in `blocks` holds a mark."""
    for b in blocks:
        if b.kind in ("para", "list") and MARK_RE.search(b.text):
            if any(mark_in(line) >= 0 for _, line in b.lines(source_lines)):
                return True
    return False


SESSION_HEADINGS = {"goal": "goal", "goals": "goal", "debrief": "debrief", "notes": "notes",
                    "notes:": "notes", "recall": "notes"}


def recall_shaped(blocks: Sequence[Block]) -> bool:
    """NOTES-FORMAT.md's session, marked or not: `Goal` or `Debrief` then `Notes` (or
    `Recall`), at any level; a file whose first heading is a top-level `# Notes` (the
    session's notes standing alone); or a top-level `# Notes` further down whose recall is
    split into parts by `---`. A lecture's `## Notes` section is none of these."""
    seen: list[str] = []
    notes_at = -1
    first = True
    for i, b in enumerate(blocks):
        if b.kind != "heading":
            continue
        name = SESSION_HEADINGS.get(b.text.strip().strip("*_").strip().lower())
        if first and name == "notes" and b.level == 1:
            return True
        first = False
        if name and name not in seen:
            seen.append(name)
            if name == "notes":
                notes_at = i
    if "notes" in seen and len(seen) >= 2 and seen.index("notes") > 0:
        return True
    if notes_at >= 0 and blocks[notes_at].level == 1:
        after = blocks[notes_at + 1:]
        return any(b.kind == "hr" for b in after) and any(b.kind == "para" for b in after)
    return False
