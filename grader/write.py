"""graded.md: the recall, verbatim, with the grader's assessments inserted where they belong.

Only lines are added, never changed, so ankigen reads the learner's words exactly as they
were written and each assessment judges the recall just above it, as a tutor's would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from .model import Assessment, PartGrade


def assessment_lines(a: Assessment) -> list[str]:
    lines = [f"{a.mark.emoji} => {_one_line(a.feedback)}"]
    lines += [f"=> {_one_line(f)}" for f in a.followups]
    if a.quote:
        lines += _quoted(a.quote)
    for said, quote in a.points:
        # A blank line first: a `=>` line right under a `>` quote would join the quote.
        lines += ["", f"=> {_one_line(said)}", *(_quoted(quote) if quote else [])]
    return lines


def _quoted(text: str) -> list[str]:
    return [f"> {q}" if q.strip() else ">" for q in text.strip().split("\n")]


def _one_line(text: str) -> str:
    """Feedback must stay on its line: a newline would end the assessment early."""
    return " ".join(text.replace("=>", "⇒").split())


def graded_markdown(recall_text: str, parts: Sequence[PartGrade]) -> str:
    lines = recall_text.split("\n")
    inserts: dict[int, list[list[str]]] = defaultdict(list)
    for part in parts:
        for a in part.assessments:
            inserts[a.after_line].append(assessment_lines(a))
        if part.unverified:
            end = content_end(lines, part.span.start, part.span.end)
            notes = [f"=> {_one_line(u)}" if u.startswith(("doubtful (", "also in the source")) else
                     f"=> unverified: {_one_line(u)}" for u in part.unverified]
            group = inserts[end]
            if group and any(a.after_line == end for a in part.assessments):
                # Under the part's closing assessment; a blank line first, or a `>` quote
                # would take the notes in as lazy continuation lines.
                group[-1] = group[-1] + [""] + notes
            else:
                group.append(notes)
    out: list[str] = []
    for n, line in enumerate(lines, start=1):
        out.append(line)
        for block in inserts.get(n, ()):
            if out and out[-1].strip():
                out.append("")
            out.extend(block)
        if n in inserts and n < len(lines) and lines[n].strip():
            out.append("")
    if 0 in inserts:  # nothing to anchor on: the top
        head = [x for block in inserts[0] for x in [*block, ""]]
        out = head + out
    text = "\n".join(out)
    return text if text.endswith("\n") else text + "\n"


def content_end(lines: Sequence[str], start: int, end: int) -> int:
    """The last non-blank line of a span (the line an end-of-part note goes after)."""
    for n in range(min(end, len(lines)), start - 1, -1):
        if lines[n - 1].strip():
            return n
    return start
