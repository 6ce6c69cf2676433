"""The grader's data model: passages of the sources, claims of the recall, and the verdicts.

Frozen dataclasses, like ankigen's, so a report can be cached, compared and turned into
JSON without surprises. Line numbers are 1-based lines of the file as read (after repair).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from ankigen.model import Mark, Span, _jsonable


class Verdict(enum.StrEnum):
    SUPPORTED = "supported"  # a cited passage says the same (LLM only)
    CONTRADICTED = "contradicted"  # a cited passage says otherwise (LLM only)
    NOT_IN_SOURCE = "not_in_source"  # nothing in the sources speaks to it: "unverified"
    UNJUDGED = "unjudged"  # offline: a passage covers the topic, but nobody judged it


@dataclass(frozen=True)
class Passage:
    """One retrievable piece of a source: a paragraph, a list item, a code block, a table."""

    id: int  # index in the source set
    file: str  # as the user named it
    span: Span
    section: str  # heading path, "Chapter 12 › Pooling"
    kind: str  # "prose" | "item" | "code" | "table"
    text: str  # the passage's text (markdown source for md files)
    terms: tuple[str, ...] = ()  # key terms it defines: **bold**, `code`, the heading's words

    def cite(self) -> str:
        return f"{self.file}:{self.span.start}"


@dataclass(frozen=True)
class KeyPoint:
    """Something a section treats as important: an omission candidate."""

    term: str
    section: str
    passage: int  # Passage.id where it is defined / first appears
    origin: str  # "heading" | "bold" | "code"


@dataclass(frozen=True)
class Claim:
    id: str  # "c3"
    part: int  # 0-based part index
    line: int  # file line of the recall it comes from
    text: str


@dataclass(frozen=True)
class Judgement:
    claim: Claim
    verdict: Verdict
    passage: Passage | None  # the cited (or, offline, best-matching) passage
    score: float  # retrieval score of that passage for this claim
    reasoning: str = ""  # written before the verdict (LLM), or how offline decided
    correction: str = ""  # what the source says instead, for contradictions
    severity: str = ""  # "major" | "minor" for contradictions
    # the model's own-knowledge reason to doubt a not_in_source claim: an opinion shown as
    # "doubtful (not in your sources)", never a mark
    doubt: str = ""


@dataclass(frozen=True)
class Omission:
    part: int
    point: str  # the key point the recall never covers
    passage: Passage
    severity: str = "minor"  # "major" puts it first; minor ones beside it go unmarked (marks.py)
    why: str = ""
    # names a source term the recall never mentions (grader/gaps.py); only key points are
    # marked, the others listed. Offline points are the sources' own terms: always key.
    key: bool = True
    # those terms (gaps.mark_key): two points naming one of them are one gap
    terms: tuple[str, ...] = ()


@dataclass(frozen=True)
class CodeRun:
    part: int
    span: Span  # lines of the recalled code
    fenced: bool
    # "ok" | "error" | "not_runnable" (names defined nowhere) | "not_runnable_here" (a
    # package not installed, the network, IPython) | "timeout" | "crashed" | "skipped"
    # (checks off, no torch, no sandbox) | "not_python" (pseudo-code or another language)
    status: str
    detail: str  # the exception, or why it was not run
    device: str = ""
    torch_version: str = ""
    line: int | None = None  # file line of the statement that failed, for "error"


@dataclass(frozen=True)
class NameCheck:
    """A PyTorch name the learner wrote that does not exist, as looking it up showed."""

    part: int
    line: int  # file line of the recall where it is written
    call: str  # `model.drop()`
    error: str  # AttributeError: 'Linear' object has no attribute 'drop'
    type: str  # the object it was looked up on: Linear, Tensor, SGD
    near: tuple[str, ...] = ()  # names that exist and are spelled close to it


@dataclass(frozen=True)
class Assessment:
    """One mark the grader writes into graded.md, after `after_line` of the recall."""

    part: int
    after_line: int
    mark: Mark
    feedback: str
    followups: tuple[str, ...] = ()
    quote: str = ""
    # One (`=>` line, `>` quote) per omitted point, written under the mark: the format
    # ankigen makes one card per point from (docs/cards.md, "The graded format").
    points: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PartGrade:
    index: int
    span: Span
    topic: str
    mark: Mark | None  # the part's overall (worst) mark; None when nothing backs one
    judgements: tuple[Judgement, ...] = ()
    omissions: tuple[Omission, ...] = ()
    code: tuple[CodeRun, ...] = ()
    assessments: tuple[Assessment, ...] = ()
    unverified: tuple[str, ...] = ()  # "=> unverified: …" lines under the part
    names: tuple[NameCheck, ...] = ()  # API names written here that do not exist


@dataclass(frozen=True)
class Report:
    recall: str
    sources: tuple[str, ...]
    mode: str  # "llm" | "offline"
    model: str | None
    parts: tuple[PartGrade, ...]
    graded_markdown: str = field(repr=False, default="")
    llm_calls: int = 0
    llm_cache_hits: int = 0
    warnings: tuple[str, ...] = ()
    # "isolation: …" when recalled code ran, "code not run: …" when it was refused; "" when
    # no code was asked to run
    code_isolation: str = ""
    set_aside: int = 0  # recall lines the tutor supplied (`=>`, `>`, a given name): not graded

    @property
    def marks(self) -> tuple[Mark | None, ...]:
        return tuple(p.mark for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON: parts numbered from 1, as in the prompts, the terminal report
        and graded.md's order."""
        data = _jsonable(asdict(self))
        data.pop("graded_markdown", None)
        for part in data["parts"]:
            part["index"] += 1
            for j in part["judgements"]:
                j["claim"]["part"] += 1
            for item in (*part["omissions"], *part["code"], *part["assessments"],
                         *part["names"]):
                item["part"] += 1
        return data

