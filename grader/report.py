"""How a report reads in a terminal: one block per part, its mark in colour, what was found."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text as _Text

from ankigen.model import Mark
from ankigen.text import clean

from .evaluate import EvalResult, label_name
from .model import PartGrade, Report, Verdict

COLOUR = {Mark.GREEN: "green", Mark.YELLOW: "yellow", Mark.RED: "red"}


def Text(text: str, style: str = "") -> _Text:  # noqa: N802 - rich's Text, cleaned
    """What a recall or a source controls never reaches the terminal as control characters."""
    return _Text(clean(text), style=style)


def show(report: Report, console: Console) -> None:
    how = f"with {report.model}" if report.mode == "llm" else "offline"
    console.print(Text(f"{report.recall}: {len(report.parts)} part(s) graded {how} against "
                       f"{len(report.sources)} source file(s)", style="bold"))
    if report.code_isolation:  # the recalled code ran (under this isolation) or was refused
        console.print(Text(report.code_isolation, style="dim"))
    for part in report.parts:
        _part(part, console)
    if report.mode == "llm":
        console.print(Text(f"model: {calls_summary(report.llm_calls, report.llm_cache_hits)}",
                           style="dim"))
    if report.set_aside:
        console.print(Text(f"set aside {report.set_aside} line(s) the tutor supplied", style="dim"))


def calls_summary(calls: int, hits: int) -> str:
    """"1 call, 1 cache hit": calls made to the endpoint, and answers the cache gave."""
    return (f"{calls} call{'s' if calls != 1 else ''}, "
            f"{hits} cache hit{'s' if hits != 1 else ''}")


def _part(part: PartGrade, console: Console) -> None:
    mark = part.mark.emoji if part.mark else "·"
    head = Text(f"\n{mark} part {part.index + 1} (lines {part.span.start}-{part.span.end}): "
                f"{part.topic}", style=f"bold {COLOUR[part.mark]}" if part.mark else "bold")
    console.print(head)
    counts: dict[str, int] = {}
    for j in part.judgements:
        counts[j.verdict.value] = counts.get(j.verdict.value, 0) + 1
    if counts:
        console.print(Text("  statements: " + ", ".join(
            f"{n} {k.replace('_', ' ')}" for k, n in sorted(counts.items())), style="dim"))
    for j in part.judgements:
        if j.verdict is Verdict.CONTRADICTED:
            where = f" ({j.passage.cite()})" if j.passage else ""
            console.print(Text(f"  ✗ line {j.claim.line}: {j.claim.text}", style="red"))
            console.print(Text(f"    source{where}: {j.correction}", style="dim"))
    for n in part.names:
        console.print(Text(f"  ✗ line {n.line}: `{n.call}` does not exist ({n.error})",
                           style="red"))
    for o in part.omissions:
        console.print(Text(f"  ∅ left out: {o.point} ({o.passage.cite()})",
                           style="yellow"))
    for run in part.code:
        style = {"ok": "green", "error": "red"}.get(run.status, "dim")
        console.print(Text(f"  ⚙ code lines {run.span.start}-{run.span.end}: {run.status}"
                           + (f": {run.detail}" if run.detail and run.status != "ok" else ""),
                           style=style))
    for note in part.unverified:
        label = "" if note.startswith(("doubtful (", "also in the source")) else "unverified: "
        console.print(Text(f"  ? {label}{note}", style="dim"))


def show_eval(result: EvalResult, console: Console) -> None:
    how = f"with {result.model}" if result.mode == "llm" else "offline"
    console.print(Text(f"{len(result.sessions)} sessions, {len(result.pairs)} marked parts, "
                       f"graded {how}", style="bold"))
    for s in result.sessions:
        counted = s.counted
        agree = sum(t == g for t, g in counted)
        console.print(f"  {clean(s.name):<28} {agree}/{len(counted)} parts agree   tutor "
                      f"{''.join(label_name(m) for m in s.tutor)}   grader "
                      f"{''.join(label_name(m) for m in s.grader)}")
    console.print(Text("\nconfusion (rows: tutor, columns: grader; · = no mark)", style="bold"))
    columns = list(next(iter(result.confusion.values())))
    console.print("        " + "".join(f"{label_name(c):>6}" for c in columns))
    for tutor, row in result.confusion.items():
        console.print(f"  {label_name(tutor):<6}" + "".join(f"{row[c]:>6}" for c in columns))
    far = result.false_accept
    rec = result.omission_recall
    found, named = result.omissions_found
    console.print(f"\nagreement {result.agreement:.0%}   Cohen's κ {result.kappa:.2f}   "
                  f"false-accept (🟢 where the tutor said 🔴) "
                  f"{'n/a' if far is None else f'{far:.0%}'}   omission recall "
                  f"{'n/a' if rec is None else f'{rec:.0%}'} ({found} of {named})   "
                  f"false omissions {result.false_omissions} "
                  f"({result.false_omissions_per_part:.2f} per part)")
