"""Reference notes at build time: explicit output claims that are wrong become gaps.

A claim in its explicit form (`# prints: X`, `# -> X`; docs/checks.md) is the one thing a
reference note asserts in a form the learner wrote to be checked: a contradicted one is
worth a card, "what does this print?" with the output it really printed. A block that
raises makes no card (issue 12: only what was marked or what the learner's recall got wrong
becomes a card; a book chapter's code that fails here is neither): `ankigen check` shows
it, and the build counts it. Blocks not runnable here or as written, timeouts and crashes
say nothing about the note either.
"""

from __future__ import annotations

from typing import Any

from .. import topics
from ..model import CheckOutput, Document, Gap, GapKind, Span
from ..phrases import normalise
from ..text import has_lookalikes, reveal
from .claims import DocumentReport


def shown_actual(actual: str | None) -> str:
    """What a contradicted claim's code really printed, with look-alike and invisible
    characters escaped when it holds any: `t\\u0435nsor(2.)` shows why it is not `tensor(2.)`."""
    text = actual or ""
    if has_lookalikes(text):
        return reveal(text) + "\n(look-alike or invisible characters shown as \\u escapes)"
    return text


def gaps_from_report(doc: Document, report: DocumentReport) -> list[tuple[Gap, CheckOutput]]:
    out: list[tuple[Gap, CheckOutput]] = []
    for b in report.blocks:
        block = b.block
        section = topics.plain(block.section or doc.title)  # the nearest heading above it
        base: dict[str, Any] = dict(part=0, topic=section, chapter=None, section=section,
                                    context="")
        for c in b.claims:
            if c.verdict != "contradicted":
                continue
            gap = Gap(kind=GapKind.WRONG_CLAIM, mark=None, line=c.claim.line,
                      span=Span(c.claim.line, c.claim.line),
                      prompt=f"{section} — your notes claim this prints "
                      f"“{c.claim.expected}”. What does it really print?",
                      answer=f"It prints: {shown_actual(c.actual)}", answer_source="run",
                      code=block.code,
                      anchor=normalise(f"ref claim {c.claim.text} {block.code}")[:400], **base)
            out.append((gap, _output(report, block.code, shown_actual(c.actual), "contradicted",
                                     "Your notes' code, run at build")))
    return out


def _output(report: DocumentReport, code: str, output: str, status: str,
            title: str) -> CheckOutput:
    return CheckOutput(code=code, output=output, status=status, device=report.device,
                       torch_version=report.torch_version, title=title)
