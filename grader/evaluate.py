"""`grader eval`: how far the grader agrees with a tutor's marks on labelled sessions.

A labelled folder holds one folder per session: `<name>/recall.md`, marked by a tutor in the
notes format, and `<name>/sources/` with what the learner studied. Each session is graded
with the tutor's marks taken out; then, part by part:

- the tutor's label is the part's worst mark (🔴 > 🟡 > 🟢); parts the tutor left unmarked
  are not counted;
- agreement, a confusion matrix (tutor rows, grader columns; "·" = the grader gave no mark),
  and Cohen's κ over the four columns;
- false-accept rate: the share of the tutor's 🔴 parts that the grader marked 🟢;
- omission recall: of the things the tutor said were left out ("you skipped X"), the share
  the grader also reported as left out in that part;
- false omissions: points the grader reported as left out that match none of the tutor's
  for that part (the target is at most 1 per 5 parts).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ankigen import phrases as ph
from ankigen.model import Document, Mark
from ankigen.parse import parse_text
from ankigen.text import read_notes

from .code import SharedRunner
from .errors import EvalError
from .grade import GradeOptions, grade_recall
from .marks import worst
from .model import Report
from .recall import recall_from_text
from .retrieve import content_tokens
from .sources import load_sources

LABELS: tuple[Mark | None, ...] = (Mark.GREEN, Mark.YELLOW, Mark.RED, None)


def label_name(mark: Mark | None) -> str:
    return mark.emoji if mark else "·"


@dataclass(frozen=True)
class SessionResult:
    name: str
    tutor: tuple[Mark | None, ...]
    grader: tuple[Mark | None, ...]
    omissions: tuple[tuple[int, str, bool], ...]  # (part, the tutor's "left out" term, found)
    report: Report = field(repr=False, compare=False)
    # (part, a point the grader reported as left out, whether the tutor named it too)
    reported: tuple[tuple[int, str, bool], ...] = ()

    @property
    def false_omissions(self) -> int:
        return sum(not hit for _, _, hit in self.reported)

    @property
    def counted(self) -> list[tuple[Mark, Mark | None]]:
        return [(t, g) for t, g in zip(self.tutor, self.grader) if t is not None]


@dataclass(frozen=True)
class EvalResult:
    mode: str
    model: str | None
    sessions: tuple[SessionResult, ...]

    @property
    def pairs(self) -> list[tuple[Mark, Mark | None]]:
        return [p for s in self.sessions for p in s.counted]

    @property
    def confusion(self) -> dict[Mark, dict[Mark | None, int]]:
        table: dict[Mark, dict[Mark | None, int]] = {
            t: {g: 0 for g in LABELS} for t in LABELS if t is not None}
        for t, g in self.pairs:
            table[t][g] += 1
        return table

    @property
    def agreement(self) -> float:
        pairs = self.pairs
        return sum(t == g for t, g in pairs) / len(pairs) if pairs else 0.0

    @property
    def kappa(self) -> float:
        return cohen_kappa(self.pairs)

    @property
    def false_accept(self) -> float | None:
        reds = [g for t, g in self.pairs if t is Mark.RED]
        return sum(g is Mark.GREEN for g in reds) / len(reds) if reds else None

    @property
    def omission_recall(self) -> float | None:
        found, named = self.omissions_found
        return found / named if named else None

    @property
    def omissions_found(self) -> tuple[int, int]:
        found = [f for s in self.sessions for _, _, f in s.omissions]
        return sum(found), len(found)

    @property
    def false_omissions(self) -> int:
        return sum(s.false_omissions for s in self.sessions)

    @property
    def false_omissions_per_part(self) -> float:
        parts = sum(len(s.tutor) for s in self.sessions)
        return self.false_omissions / parts if parts else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "model": self.model, "parts": len(self.pairs),
            "agreement": round(self.agreement, 4), "kappa": round(self.kappa, 4),
            "false_accept_rate": self.false_accept, "omission_recall": self.omission_recall,
            "omissions_found": list(self.omissions_found),
            "false_omissions": self.false_omissions,
            "false_omissions_per_part": round(self.false_omissions_per_part, 4),
            "confusion": {label_name(t): {label_name(g): n for g, n in row.items()}
                          for t, row in self.confusion.items()},
            "sessions": [{"name": s.name, "tutor": [label_name(m) for m in s.tutor],
                          "grader": [label_name(m) for m in s.grader],
                          "omissions": [{"part": p + 1, "term": t, "found": f}
                                        for p, t, f in s.omissions],
                          "reported": [{"part": p + 1, "point": t, "tutor_named": f}
                                       for p, t, f in s.reported]}
                         for s in self.sessions],
        }


def cohen_kappa(pairs: Sequence[tuple[Mark | None, Mark | None]]) -> float:
    if not pairs:
        return 0.0
    n = len(pairs)
    observed = sum(t == g for t, g in pairs) / n
    expected = sum((sum(t == k for t, _ in pairs) / n) * (sum(g == k for _, g in pairs) / n)
                   for k in LABELS)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def sessions_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise EvalError("no such folder" if not folder.exists() else "not a folder",
                        path=str(folder))
    if (folder / "recall.md").is_file():
        return [folder]
    found = sorted(p for p in folder.iterdir() if (p / "recall.md").is_file())
    if not found:
        raise EvalError("no labelled sessions: expected <name>/recall.md and <name>/sources/ "
                        "inside", path=str(folder))
    return found


def tutor_labels(doc: Document) -> tuple[Mark | None, ...]:
    return tuple(worst([a.mark for a in p.assessments]) for p in doc.parts)


def left_out_terms(doc: Document) -> list[tuple[int, str]]:
    """What the tutor said each part left out: "you skipped padding and stride" → 2 terms."""
    out = []
    for p in doc.parts:
        for a in p.assessments:
            named = ph.named_miss(_without_explanation(a.feedback))
            if named and re.search(r"\b(?:left out|skipped|forgot|missed|didn'?t mention|"
                                   r"did not mention|omitted|missing)\b", a.feedback, re.I):
                out += [(p.index, t.strip()) for t in re.split(r",|\band\b|&", named) if t.strip()]
    return out


def _without_explanation(feedback: str) -> str:
    """The feedback up to what it names: "you left out fake.detach(), which keeps the
    discriminator's loss from …" names fake.detach(); "you skipped padding, stride and
    dilation" names three things (short items, an "and")."""
    m = ph.NAMED_MISS_RE.search(feedback)
    if not m:
        return feedback
    head, comma, rest = m.group("x").partition(",")
    items = [t.strip() for t in rest.split(",")]
    if not comma or (re.search(r"\band\b", rest) and all(0 < len(t.split()) <= 4 for t in items)):
        return feedback
    return feedback[: m.start("x")] + head


def _found(term: str, reported: Sequence[str]) -> bool:
    want = set(content_tokens(term))
    return bool(want) and any(len(want & set(content_tokens(r))) >= max(1, len(want) / 2)
                              for r in reported)


def evaluate(folder: Path, options: GradeOptions,
             runner_factory: Callable[[], Any] | None = None,
             progress: Callable[[int, int], None] | None = None) -> EvalResult:
    sessions = sessions_in(folder)
    if runner_factory is None and options.run_code:
        with SharedRunner(options.device, options.code_timeout_s, options.unsandboxed) as shared:
            return evaluate(folder, options, shared, progress)
    results = []
    for i, session in enumerate(sessions):
        results.append(evaluate_session(session, options, runner_factory))
        if progress:
            progress(i + 1, len(sessions))
    return result_of(results, options)


def result_of(results: Sequence[SessionResult], options: GradeOptions) -> EvalResult:
    mode = "llm" if options.endpoint is not None else "offline"
    return EvalResult(mode, options.endpoint.model if options.endpoint else None, tuple(results))


def evaluate_session(session: Path, options: GradeOptions,
                     runner_factory: Callable[[], Any] | None = None) -> SessionResult:
    """Grade one labelled session with its marks taken out and compare it with them."""
    path = session / "recall.md"
    original = read_notes(path).text
    marked = parse_text(original, str(path), kind="recall")
    if not (session / "sources").is_dir():
        raise EvalError("no sources/ folder beside recall.md", path=str(session))
    sources = load_sources([session / "sources"])
    recall = recall_from_text(original, str(path))
    report = grade_recall(recall, sources, options, runner_factory)
    tutor = tutor_labels(marked)
    if len(report.parts) != len(tutor):
        raise EvalError(f"the session has {len(tutor)} parts marked but {len(report.parts)} "
                        "once the marks are taken out", path=str(path))
    named = left_out_terms(marked)
    omitted = [(part, term, _found(term, [o.point for o in report.parts[part].omissions]))
               for part, term in named]
    reported = [(part.index, o.point, any(_found(t, [o.point]) for p, t in named
                                          if p == part.index))
                for part in report.parts for o in part.omissions]
    return SessionResult(session.name, tutor, report.marks, tuple(omitted), report,
                         tuple(reported))
