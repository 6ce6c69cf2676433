"""The data model: what a notes file holds once parsed, and the cards made from it.

Everything here is a frozen dataclass so parsed documents can be cached, hashed and
shared between processes. Line numbers are 1-based and refer to the file as read
(after repair, which never adds or removes lines).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# A frozen dataclass's `__init__` sets each field through `object.__setattr__`; a build
# makes a Gap, a Card and most of an Assessment per gap, 10,000s in all, in its parse
# workers. Their `of` constructors fill the instance's `__dict__` in one call instead
# (~1.3 µs less a Gap, ~0.9 µs a Card): the same fields in the same order, so equality,
# hash, repr and pickles are the same, and assigning to a field still raises
# FrozenInstanceError (tests/test_model_of.py). `identity.py` does the same for its rows.
_bare = object.__new__


class Mark(enum.StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"

    @property
    def emoji(self) -> str:
        return {"green": "🟢", "yellow": "🟡", "red": "🔴"}[self.value]


class GapKind(enum.StrEnum):
    ASSESSMENT = "assessment"  # a 🟡/🔴 (or, with --include-green, 🟢) assessment line
    QUESTION = "question"  # the learner's own question inside an assessment
    INLINE_MARK = "inline_mark"  # a mark in mid-sentence: "..., 🟡 (forgot the rest)"
    FORGOT_NAME = "forgot_name"  # "I forgot the name of ..." with an inline "=> X"
    LOOKED_UP = "looked_up"  # "The class is called X (looked up the name.)"
    INLINE_ANSWER = "inline_answer"  # "... faster! => .to()": an answer with no cue phrase
    FORGOT = "forgot"  # "I don't remember ...", "what else ...?" with no answer given
    SELF_QUESTION = "self_question"  # "What's the other quirk?" answered by the next lines
    WRONG_CODE = "wrong_code"  # recalled code that is wrong (a check or the tutor says so)
    WRONG_CLAIM = "wrong_claim"  # a reference note's code claim that running contradicts
    WRONG_NAME = "wrong_name"  # a PyTorch call that running shows does not exist: `model.drop()`


@dataclass(frozen=True)
class Span:
    """Inclusive 1-based line range."""

    start: int
    end: int

    def __contains__(self, line: object) -> bool:
        return isinstance(line, int) and self.start <= line <= self.end


@dataclass(frozen=True)
class Section:
    title: str
    level: int
    line: int


@dataclass(frozen=True)
class Bullet:
    """One item of a list in a reference note: `- In 1974, Werbos invented backprop.`"""

    text: str  # the item's own lines (not its sub-items), marker removed, joined
    line: int
    depth: int  # 0 for a top-level item, 1 under it, ...
    section: str  # the heading it sits under


ClaimForm = Literal["prints", "value"]


@dataclass(frozen=True)
class CodeClaim:
    """A written claim about what code prints: `# prints: tensor(6.)`."""

    line: int  # file line of the comment
    expected: str  # the claimed output, as written
    text: str  # the whole comment, for display
    expr_line: int | None  # file line of the expression it describes, if not a print
    # "prints" (`# prints:`, `# output:`): what the statement printed, or the value a
    # notebook shows when it printed nothing; "value" (`# ->`, `# returns`): the value's repr.
    form: ClaimForm = "prints"


@dataclass(frozen=True)
class CodeBlock:
    code: str
    lang: str  # "python", "" when unknown
    span: Span  # lines of the code itself (fences excluded)
    fenced: bool
    claims: tuple[CodeClaim, ...] = ()
    section: str = ""


@dataclass(frozen=True)
class Assessment:
    mark: Mark
    line: int
    feedback: str  # text after the first "=>" (or after the mark), repaired
    corrections: tuple[str, ...]  # later "=>" segments on the same line, in order
    followups: tuple[str, ...]  # "=>" lines right after it
    quote: str  # blockquote right after it (markdown source, no "> ")
    question: str | None  # the learner's own question inside the feedback
    judged: Span  # the recall this assessment judges
    inline: bool  # mark inside a sentence rather than at the start of a line

    @classmethod
    def of(cls, mark: Mark, line: int, feedback: str, corrections: tuple[str, ...],
           followups: tuple[str, ...], quote: str, question: str | None, judged: Span,
           inline: bool) -> Assessment:
        """`Assessment(...)` for bulk use (see `_bare`): equal to it, and as frozen."""
        a = _bare(cls)
        a.__dict__.update(mark=mark, line=line, feedback=feedback, corrections=corrections,
                          followups=followups, quote=quote, question=question, judged=judged,
                          inline=inline)
        return a


@dataclass(frozen=True)
class Gap:
    """Something the learner missed or got wrong: one gap becomes one note."""

    kind: GapKind
    mark: Mark | None  # None for unmarked gaps
    line: int
    span: Span  # lines the gap covers (for "what you wrote" and linking)
    part: int  # 0-based index of the part in the file
    topic: str  # the part's guessed topic, for the front
    chapter: str | None  # "10" or None
    section: str  # the heading the gap sits under ("Notes")
    prompt: str  # the question (front), never containing the answer
    context: str  # the learner's own words nearest the gap ("what you wrote")
    answer: str | None  # best answer text (markdown), None when the notes have none
    answer_source: str | None  # "quote" | "followup" | "correction" | "feedback" | "recall"
    cloze: str | None = None  # text with {{c1::...}} when the gap is a cloze
    term: str | None = None  # the name/term that was missed, when there is one
    code: str | None = None  # learner's code line(s) for WRONG_CODE
    anchor: str = ""  # normalised text the identity is derived from

    @classmethod
    def of(cls, *, kind: GapKind, mark: Mark | None, line: int, span: Span, part: int,
           topic: str, chapter: str | None, section: str, prompt: str, context: str,
           answer: str | None, answer_source: str | None, cloze: str | None = None,
           term: str | None = None, code: str | None = None, anchor: str = "") -> Gap:
        """`Gap(...)` for bulk use (see `_bare`): equal to it, and as frozen."""
        g = _bare(cls)
        g.__dict__.update(kind=kind, mark=mark, line=line, span=span, part=part, topic=topic,
                          chapter=chapter, section=section, prompt=prompt, context=context,
                          answer=answer, answer_source=answer_source, cloze=cloze, term=term,
                          code=code, anchor=anchor)
        return g

    @property
    def unanswered(self) -> bool:
        return not self.answer


@dataclass(frozen=True)
class Part:
    index: int
    span: Span
    topic: str
    chapter: str | None
    assessments: tuple[Assessment, ...] = ()


@dataclass(frozen=True)
class Document:
    path: str  # as given (relative to the vault when built from one)
    kind: str  # "recall" | "reference"
    title: str
    goal: str
    sections: tuple[Section, ...]
    parts: tuple[Part, ...]
    gaps: tuple[Gap, ...]
    code_blocks: tuple[CodeBlock, ...]
    line_count: int
    encoding: str  # how the bytes were decoded: "utf-8", "utf-8-sig", "cp1252 (fallback)"
    repairs: tuple[str, ...] = ()  # what the reader repaired, for `parse` output
    warnings: tuple[str, ...] = ()
    bullets: tuple[Bullet, ...] = ()  # reference notes' list items
    footnotes: tuple[tuple[str, str], ...] = ()  # `[^label]: text` definitions, for cards

    @property
    def assessments(self) -> tuple[Assessment, ...]:
        return tuple(a for p in self.parts for a in p.assessments)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class CheckOutput:
    """What a check printed when it was run at build time."""

    code: str
    output: str
    status: str  # "ok" | "error" | "timeout" | "crashed" | "contradicted" | "not run" (refused)
    device: str  # "cpu" | "cuda" | "cpu (cuda requested, no GPU)"
    torch_version: str
    title: str = ""


def check_key(path: str, gap: Gap) -> str:
    """Which card a check's output belongs to: its note and the gap's place and text there.
    Never the gap's text alone: two notes with the same tutor feedback have their own code."""
    return f"{path}\x1f{gap.span.start}\x1f{gap.anchor}"


@dataclass(frozen=True)
class Card:
    guid: str
    model: str  # "basic" | "cloze"
    deck: str
    fields: tuple[str, ...]  # in the model's field order
    tags: tuple[str, ...]
    sort_key: tuple[str, int]  # (file, ordinal) for new-card order
    anchor: str
    file: str
    content_hash: str = ""
    mark: str = "unmarked"  # "red" | "yellow" | "green" | "unmarked", for summaries
    gap: Gap | None = field(default=None, compare=False)

    @classmethod
    def of(cls, *, guid: str, model: str, deck: str, fields: tuple[str, ...],
           tags: tuple[str, ...], sort_key: tuple[str, int], anchor: str, file: str,
           content_hash: str = "", mark: str = "unmarked", gap: Gap | None = None) -> Card:
        """`Card(...)` for bulk use (see `_bare`): equal to it, and as frozen."""
        c = _bare(cls)
        c.__dict__.update(guid=guid, model=model, deck=deck, fields=fields, tags=tags,
                          sort_key=sort_key, anchor=anchor, file=file,
                          content_hash=content_hash, mark=mark, gap=gap)
        return c


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
