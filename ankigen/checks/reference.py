"""Reference notes at build time: wrong claims and code that does not run become gaps.

The learner believed them, so they are worth a card: "what does this print?" with the
output it really printed, or "why does this not run?" with the real error. Blocks that say
nothing about the note (not runnable here or as written, timeouts, crashes) make no card.
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
        if b.status == "error":
            gap = Gap(kind=GapKind.WRONG_CODE, mark=None, line=block.span.start,
                      span=block.span, prompt=f"{section} — this code from your notes does not "
                      "run. What is wrong with it?", answer=f"It fails with: {b.exception}",
                      answer_source="run", code=block.code,
                      anchor=normalise(f"ref code {block.code}")[:400], **base)
            out.append((gap, _output(report, block.code, b.exception or "", "error",
                                     "Your notes' code, run as written")))
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
