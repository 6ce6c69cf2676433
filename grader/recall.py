"""The recall under grading: read it, take out any tutor marks, and split it into claims.

A session that already carries marks (a re-grade, or a labelled session in `grader eval`)
is graded without them: assessment lines and their `=>` / `>` tails are the tutor's, not
the learner's. Everything else is kept verbatim in `Recall.text` (graded.md is written from
it), but only the learner's own words are claims or count as recalled: `=>` answers, `>`
quotes and "the name is X" after a forgot-the-name cue are set aside (`Recall.learner`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ankigen import phrases as ph
from ankigen.errors import InputError
from ankigen.model import Document, Span
from ankigen.parse import MARK_RE, parse_text
from ankigen.text import read_notes

from .errors import RecallError
from .model import Claim
from .retrieve import content_tokens

_INLINE_TUTOR_RE = re.compile(rf"\s*(?:{MARK_RE.pattern})\ufe0f?\s*=>.*$")
_INLINE_MARK_RE = re.compile(rf"(?:{MARK_RE.pattern})\ufe0f?\s?")
_META_RE = re.compile(
    r"^\s*(?:(?:so|ok|okay|now|well|right|alright|basically|and)[,\s]+)*(?:let'?s|i'?ll|i will|"
    r"i'm going to|i am going to|here'?s|here is|that'?s (?:it|all)|moving on|next)\b|"
    r"\blet'?s\s+(?:integrate|recall|continue|move|go|talk|start|recap|review)\b",
    re.I,
)
_MIN_CLAIM_TOKENS = 3
# "Here is the step from memory:" introduces; "A Conv2d keeps the 28x28 size by default, so
# after flattening there are 8 * 28 * 28 features:" says something, then shows it.
_LEAD_IN_TOKENS = 6
# Text that speaks to the grader rather than about the subject: never supported, and a
# part holding it never gets 🟢.
_INSTRUCTION_RE = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|prompt|rules)\b|"
    r"\bmark\b.{0,30}\b(?:green|correct|right|supported|🟢)|\bsystem prompt\b|"
    r"\byou are (?:now|a)\b.{0,40}\b(?:grader|assistant|model|examiner)\b",
    re.I | re.S,
)


@dataclass(frozen=True)
class Recall:
    path: str
    text: str  # the recall as graded: repaired, tutor marks removed
    doc: Document  # ankigen's parse of `text`, always as a recall session
    stripped: int  # how many tutor lines were taken out
    # `text`'s lines with what the tutor supplied blanked out (same line numbers): the
    # learner's words only, the sole source of claims and of what the recall "mentions"
    learner: tuple[str, ...] = ()
    set_aside: int = 0  # tutor lines and line tails left out of `learner`
    # lines written after a tutor's mark in the same part (a re-graded session): the
    # learner's words, judged as claims, but prompted: what they add after "you skipped
    # stacking" was still left out
    prompted: frozenset[int] = frozenset()

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @property
    def learner_text(self) -> str:
        return "\n".join(self.learner)

    @property
    def unprompted_text(self) -> str:
        """The learner's words before any tutor mark of their part: what counts as said
        when asking what a part left out."""
        return "\n".join("" if n in self.prompted else line
                         for n, line in enumerate(self.learner, start=1))


def load_recall(path: Path) -> Recall:
    shown = str(path)
    try:
        text = read_notes(path, shown).text
    except InputError as exc:
        raise RecallError(exc.bare, path=exc.path, line=exc.line) from None
    return recall_from_text(text, shown)


def recall_from_text(text: str, path: str = "<recall>") -> Recall:
    marked = parse_text(text, path, kind="recall")
    text, removed, prompted = strip_marks(text, marked)
    doc = parse_text(text, path, kind="recall")
    learner, set_aside = learner_lines(text, doc)
    if not any(_claim_lines(learner, doc)) and not doc.code_blocks:
        raise RecallError("empty recall: no sentences or code to grade", path=path)
    return Recall(path, text, doc, removed, tuple(learner), set_aside, prompted)


# "I forgot the name of that layer, the name is bottleneck layer": the answer after the cue
# is the tutor's (or a lookup's), not recall.
_NAME_LEAD = r"(?:but\s+)?(?:the\s+(?:name|term|answer)\s+is|it'?s\s+called|it\s+is\s+called)"
_SUPPLIED_NAME_RE = re.compile(rf"[,;:.!(\s]+{_NAME_LEAD}\b.*$", re.I)


def supplied_names(recall: Recall) -> list[str]:
    """The names the tutor supplied after a forgot-the-name cue ("bottleneck layer"), hard
    wraps joined (the cue and the name may sit on two lines): the learner described each
    idea and forgot only its name."""
    out: list[str] = []
    for part in recall.doc.parts:
        text = " ".join(recall.lines[part.span.start - 1 : part.span.end])
        for cue in ph.FORGOT_NAME_RE.finditer(text):
            m = _SUPPLIED_NAME_RE.search(text, cue.end())
            if m:
                name = re.sub(r"^.*?\b(?:is|called)\s+", "", m.group(0))
                name = name.split(ph.ARROW, 1)[0]  # "=> Good name!" is no part of it
                out.append(_CLAUSE_END_RE.split(name, maxsplit=1)[0].strip())  # as learner_lines
    return list(dict.fromkeys(out))


def _code_lines(doc: Document) -> set[int]:
    """The lines of the recall's code blocks, fences included."""
    return {n for c in doc.code_blocks
            for n in range(c.span.start - c.fenced, c.span.end + 1 + c.fenced)}


def learner_lines(text: str, doc: Document) -> tuple[list[str], int]:
    """`text`'s lines with the tutor's words blanked: `=>` lines and tails, `>` quotes, and
    a name supplied after a forgot-the-name cue. Code lines are kept (code is run, not read
    as claims). Returns the lines and how many were set aside."""
    code = _code_lines(doc)
    out: list[str] = []
    set_aside = 0
    # the line before ended inside the tutor's words: before the name ("=> the name is"),
    # so it opens this line, or inside it ("=> the name is gamma"), so it may go on here
    runs_on = False
    name_began = False
    for n, line in enumerate(text.split("\n"), start=1):
        s = line.strip()
        if n in code or not s:
            out.append(line)
            runs_on = False
            continue
        kept = line
        name_open = False  # a supplied name set aside here has not reached its clause's end
        if s.startswith((">", ph.ARROW)):
            kept = ""
        elif ph.ARROW in line:
            before, after = line.split(ph.ARROW, 1)
            kept, name_open = _after_supplied_name(before, after)
        elif (cue := ph.FORGOT_NAME_RE.search(line)) is not None:
            m = _SUPPLIED_NAME_RE.search(line, cue.end())
            kept, name_open = _after_supplied_name(line[: m.start()], m.group(0)) if m \
                else (line, False)
        elif runs_on and not _NEW_BLOCK_RE.match(s):
            # a hard wrap split the tutor's words: the rest of their clause opens this line
            # ("… => the name is" / "nn.Embedding.from_pretrained, and freeze=True …"). Once
            # the name began on the line before, its rest is a few words, so a longer run is
            # the learner's next sentence ("… => the name is gamma" / "The shift parameter is
            # beta, and …"); a name that opens this line is set aside up to its clause's end
            end = _CLAUSE_END_RE.search(line)
            head = line[: end.start()] if end else line
            if not name_began or len(head.split()) <= _NAME_TAIL_WORDS:
                kept = line[end.end():].strip() if end else ""
        # only when what was set aside reaches the line's end can it run on past it
        name_began = name_open
        runs_on = name_open or (kept != line and line.startswith(kept.rstrip())
                                and bool(_UNFINISHED_RE.search(line)))
        set_aside += kept != line
        out.append(kept)
    return out, set_aside


def _after_supplied_name(before: str, tutor: str) -> tuple[str, bool]:
    """The learner's words of a line whose tutor's part (`tutor`, from its `=>` or its "the
    name is") supplies a name: the name ends with its clause ("=> the name is learning
    schedule. One pass of m iterations is an epoch.": the second sentence is the learner's,
    written on after the tutor's insert), any other remark runs to the line's end. Returns
    the words kept and whether the name runs on past the line's end (a hard wrap)."""
    lead = _NAME_LEAD_RE.match(tutor)
    if lead is None:
        return before.rstrip(), False
    end = _CLAUSE_END_RE.search(tutor, lead.end())
    if end is None:
        return before.rstrip(), True
    rest = tutor[end.end():].split(ph.ARROW, 1)[0].strip()  # "=> Good name!" is the tutor's
    if _VERDICT_RE.match(rest):
        rest = ""  # "=> the name is X. Good, but …": the tutor goes on judging
    before = before.rstrip()
    if not rest or not before:
        return before or rest, False
    # the name's sentence ended: so does the learner's, cut by the insert ("… does that" +
    # "One pass …" are two sentences, not one)
    stop = "." if end.group(0) in ".!?" and not _ENDS_SENTENCE_RE.search(before) else ""
    return f"{before}{stop} {rest}", False


# the tutor's words at a line's end stop mid-clause ("=> the name is", "=> the"), so a hard
# wrap carries the rest of them onto the next line
_UNFINISHED_RE = re.compile(
    r"(?:\b(?:is|are|called|the|a|an|of|to|name|term|answer)|[,:])\s*$", re.I)
_CLAUSE_END_RE = re.compile(r"[,;:.!?](?=\s|$)")
_ENDS_SENTENCE_RE = re.compile(r"[.!?:;,]$")
_NAME_TAIL_WORDS = 3  # at most this much of a supplied name runs on past a hard wrap
# a tutor's verdict opening what follows the supplied name: "Good, but …", "Right.", "Not quite:"
_VERDICT_RE = re.compile(r"(?:good|great|right|correct|exactly|yes|nice|well done|fine|ok(?:ay)?"
                         r"|close|almost|not quite|careful)(?:\s*[,.!;:]|\s+but\b|\s*$)", re.I)
# what opens a supplied name: "=> the name is", "it's called", after any punctuation
_NAME_LEAD_RE = re.compile(rf"[,;:.!(\s]*{_NAME_LEAD}\s+\S", re.I)
_NEW_BLOCK_RE = re.compile(r"(?:[-*+>#|]|\d+[.)]\s|=>)")


def strip_marks(text: str, doc: Document) -> tuple[str, int, frozenset[int]]:
    """The recall without its assessments: their lines and tails go, inline tutor remarks
    (`… 🟡 => feedback`) are cut from the line, a learner's own inline mark loses its emoji.
    Also returns the numbers (in the text returned) of the lines that follow a tutor's mark
    in the same part: written after the feedback."""
    lines = text.split("\n")
    drop: set[int] = set()
    marks = {a.line for a in doc.assessments if not a.inline}
    for line_no in marks:
        drop.add(line_no)
        drop.update(tail_lines(lines, line_no))
    ends = {p.span.end for p in doc.parts}
    out: list[tuple[str, bool]] = []
    edited = 0
    after = False
    for n, line in enumerate(lines, start=1):
        after = (after and n - 1 not in ends) or n in marks
        if n in drop:
            continue
        if MARK_RE.search(line):
            new = _INLINE_TUTOR_RE.sub("", line)
            new = _INLINE_MARK_RE.sub("", new).rstrip() if new == line else new.rstrip()
            edited += new != line
            line = new
        out.append((line, after))
    kept = _squeeze(out)
    prompted = frozenset(n for n, (line, late) in enumerate(kept, start=1)
                         if late and line.strip())
    return "\n".join(line for line, _ in kept), len(drop) + edited, prompted


def tail_lines(lines: list[str], line: int) -> list[int]:
    """The `=>` lines and the first `>` quote after an assessment line (blank lines between
    them belong to the tail), as ankigen's parser reads them."""
    tail: list[int] = []
    quoted = False
    n = line + 1
    pending: list[int] = []
    while n <= len(lines):
        s = lines[n - 1].strip()
        if not s:
            pending.append(n)
        elif s.startswith(ph.ARROW):
            tail += pending + [n]
            pending = []
        elif s.startswith(">") and not quoted:
            while n <= len(lines) and lines[n - 1].strip().startswith(">"):
                pending.append(n)
                n += 1
            tail += pending
            pending = []
            quoted = True
            continue
        else:
            break
        n += 1
    return tail


def _squeeze(lines: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """No more than one blank line in a row where tutor lines were taken out."""
    out: list[tuple[str, bool]] = []
    for line in lines:
        if not line[0].strip() and out and not out[-1][0].strip():
            continue
        out.append(line)
    return out


_ITEM_RE = re.compile(r"^\s*(?:(?P<bullet>[-*+])|\d+[.)])\s+")


def _units(lines: Sequence[str], doc: Document) -> list[tuple[int, list[tuple[int, str]]]]:
    """(part, [(line, text)…]) for each paragraph, list item and table row of the learner's
    text, code and headings left out: the stretches a sentence may run across. A hard-wrapped
    line ends mid-sentence and the next goes on with it, even one that starts like `1)`; a
    bullet or a table row never continues the line before."""
    code = _code_lines(doc)
    out: list[tuple[int, list[tuple[int, str]]]] = []
    for part in doc.parts:
        units: list[list[tuple[int, str]]] = [[]]
        for n in range(part.span.start, part.span.end + 1):
            line = lines[n - 1]
            s = line.strip()
            if n in code or not s or s.startswith(("#", "```", "---")):
                units.append([])
                continue
            item = _ITEM_RE.match(line)
            going_on = bool(units[-1]) and ph.wraps_into(units[-1][-1][1], s) and not (
                item and item["bullet"])
            if s.startswith("|") or (item and not going_on):
                units.append([])
                line = line[item.end():] if item else line
            units[-1].append((n, line.strip()))
        out += [(part.index, u) for u in units if u]
    return out


def _claim_lines(lines: Sequence[str], doc: Document) -> list[tuple[int, int, str]]:
    """(part, line, sentence) for every learner sentence worth judging; a sentence runs
    across a hard wrap (the shared splitter joins it) and is placed on its first line."""
    out: list[tuple[int, int, str]] = []
    for part, unit in _units(lines, doc):
        words = [(n, w) for n, text in unit for w in text.split()]
        at = 0
        for sentence in ph.sentences("\n".join(text for _, text in unit)):
            size = len(sentence.split())
            line = words[min(at, len(words) - 1)][0]
            at += size
            sentence = " ".join(sentence.split())
            cue = ph.FORGOT_RE.search(sentence)
            if cue and cue.start() > 0:
                # "Randomized PCA is the one for data that doesn't fit in memory, I forgot
                # the name of the method …": what comes before the gap is still a statement
                sentence = sentence[: cue.start()].rstrip(" ,;:-—")
            if _is_claim(sentence):
                out.append((part, line, sentence))
    return out


def _is_claim(sentence: str) -> bool:
    """A statement about the subject, not a question, a plan or a topic announcement."""
    if sentence.endswith("?") or _META_RE.search(sentence) or is_instruction(sentence):
        return False
    lead_in = sentence.endswith(":") and len(content_tokens(sentence)) < _LEAD_IN_TOKENS
    if lead_in or (len(sentence.split()) <= 10 and any(
            pat.search(sentence) for pat in ph.TOPIC_PATTERNS[:2])):
        return False  # "So, batch gradient descent.": the part's topic, not a claim
    if ph.FORGOT_RE.search(sentence) or ph.LOOKED_UP_RE.search(sentence):
        return False
    return len(content_tokens(sentence)) >= _MIN_CLAIM_TOKENS


def sentence_claims(recall: Recall) -> list[Claim]:
    """Offline claims: the learner's sentences, each with its part and first line."""
    return [Claim(f"c{i + 1}", part, line, text)
            for i, (part, line, text) in enumerate(_claim_lines(recall.learner, recall.doc))]


def paragraphs(recall: Recall, part: int) -> list[tuple[int, str]]:
    """(first line, text) of a part's paragraphs, list items and rows in the learner's words,
    hard wraps joined: what the model reads as the recall."""
    return [(unit[0][0], ph.unwrap("\n".join(t for _, t in unit)).replace("\n", " "))
            for p, unit in _units(recall.learner, recall.doc) if p == part]


def is_instruction(text: str) -> bool:
    return bool(_INSTRUCTION_RE.search(text))


def part_text(recall: Recall, span: Span, without: frozenset[int] = frozenset()) -> str:
    """The learner's words in a part (tutor lines blanked), but the lines in `without`."""
    return "\n".join("" if n in without else recall.learner[n - 1]
                     for n in range(span.start, span.end + 1))
