"""Notes → Document: sections, parts, assessments, gaps and code, each with its lines.

The token stream (blocks.py) gives structure; this module interprets it as notes
mean it: `---` splits parts, a line that starts with a mark judges the recall
before it, `=>` lines and `>` quotes after it answer it, and cue phrases inside a
line ("I forgot the name …", "(looked up the name)") are gaps of their own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import fronts, md_rules, topics
from . import phrases as ph
from .blocks import Block, to_blocks
from .code_claims import extract_claims
from .marks import MARK_RE, mark_in, marked, recall_shaped
from .model import (
    Assessment,
    Bullet,
    CodeBlock,
    CodeClaim,
    Document,
    Gap,
    GapKind,
    Mark,
    Part,
    Section,
    Span,
)
from .python_code import fence_lang, is_python
from .text import EMOJI_MARK, read_notes
from .wrote import what_you_wrote

CLOZE_SLOT = "\ue000"  # where {{c1::term}} goes; the renderer escapes the term
_QUOTE_PREFIX_RE = re.compile(r"^\s*>\s?")
_CHAPTER_ABOUT_RE = re.compile(r"\bchapter\s+(\d+)\s+(?:is|was)\s+(?:all\s+)?(?:about|on)\b", re.I)
_PAREN_RE = re.compile(r"\(([^)]*)\)")
_QUESTION_LEAD_RE = re.compile(r"^(?:one|my)\s+question\s+(?:I\s+have\s+)?is,?\s*", re.I)
_BULLET_RE = re.compile(r"^\s*(?:[-*+]\s+|\d+[.)]\s+|>\s*)?(?:\*\*|__)?")
_CODE_HEAD_RE = re.compile(r"^\s*(?:for|while|if|elif|else|def|class|with|try|except)\b.*:\s*(#.*)?$")
_ANSWER_LIMIT = 900


@dataclass
class _Item:
    kind: str  # "line" | "quote" | "code" | "heading"
    start: int
    end: int
    text: str
    para: int = -1  # paragraph id for lines
    info: str = ""
    mark: int = -1  # where a line's first mark is (`marks.mark_in`); -1: none


@dataclass
class _PartState:
    index: int
    span: Span
    topic: str
    chapter: str | None
    section: str
    items: list[_Item]
    headings: tuple[tuple[int, str], ...] = ()  # the part's own subject headings (topics.py)
    assessments: list[Assessment] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)

    def topic_at(self, line: int) -> str:
        return topics.gap_topic(self.headings, line, self.topic)


def parse_file(path: Path, display: str | None = None, *, include_green: bool = False) -> Document:
    """Read, repair and parse one notes file."""
    shown = display or str(path)
    read = read_notes(path, shown)
    doc = parse_text(read.text, shown, include_green=include_green)
    return _with_reading(doc, read.encoding, read.repairs, read.warnings)


def _with_reading(doc: Document, encoding: str, repairs: tuple[str, ...],
                  warnings: tuple[str, ...]) -> Document:
    return replace(doc, encoding=encoding, repairs=repairs, warnings=warnings + doc.warnings)


def parse_text(text: str, path: str = "<text>", *, include_green: bool = False,
               kind: str | None = None) -> Document:
    """Parse already-repaired text. Never raises on odd markdown.

    `kind` forces "recall" or "reference"; by default a file with marks or the shape of a
    session (`marks.recall_shaped`) is a recall session, and any other file is reference
    material that makes no cards (the grader forces "recall" on a learner's unmarked text).
    """
    if "\r" in text:  # markdown-it counts a lone CR as a line break: so must we
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    source_lines = text.split("\n")
    blocks = to_blocks(text)
    sections = tuple(Section(b.text, b.level, b.start) for b in blocks if b.kind == "heading")
    title = next((s.title for s in sections if s.level == 1), Path(path).stem)
    goal = _section_text(blocks, source_lines, "goal")
    region = _recall_region(blocks)
    has_marks = marked(region, source_lines)  # emoji in tables, legends, headings are data
    is_recall = kind == "recall" or (kind is None and (
        has_marks or recall_shaped(blocks)))
    code_blocks = _fenced_code(blocks, source_lines)
    notes = md_rules.footnote_definitions(source_lines, [
        (b.start, b.end) for b in blocks if b.kind == "fence"]) if "[^" in text else ()
    if not is_recall:
        return Document(path, "reference", title, goal, sections, (), (), code_blocks,
                        len(source_lines), "utf-8", bullets=_bullets(blocks, source_lines),
                        footnotes=notes)

    goal_chapter = _single_chapter(goal)
    parts: list[Part] = []
    gaps: list[Gap] = []
    pseudo: list[CodeBlock] = []
    for _index, chunk in enumerate(_split_parts(region)):
        items = _items(chunk, source_lines)
        if not items:
            continue
        state = _new_part(len(parts), chunk, items, blocks, sections, goal_chapter,
                          len(source_lines))
        _walk(state, include_green)
        _tutor_chapter(state)
        parts.append(Part(state.index, state.span, state.topic, state.chapter,
                          tuple(state.assessments)))
        gaps.extend(state.gaps)
        pseudo.extend(_pseudo_code(items, state.section))
    all_code = tuple(sorted(code_blocks + tuple(pseudo), key=lambda c: c.span.start))
    return Document(path, "recall", title, goal, sections, tuple(parts), tuple(gaps), all_code,
                    len(source_lines), "utf-8", footnotes=notes)


# --- structure ---------------------------------------------------------------------------


_ITEM_MARK_RE = re.compile(r"^\s*(?:[-*+]|\d{1,9}[.)])(?:\s+|$)")


def _bullets(blocks: list[Block], source_lines: list[str]) -> tuple[Bullet, ...]:
    """Each list item's own text (its sub-items are bullets of their own), with its line."""
    out: list[Bullet] = []
    section = ""
    for b in blocks:
        if b.kind == "heading":
            section = b.text
            continue
        for k, (start, end, depth) in enumerate(b.items):
            nxt = b.items[k + 1][0] if k + 1 < len(b.items) else end + 1
            own = [source_lines[n - 1] for n in range(start, min(end, nxt - 1) + 1)]
            first = _ITEM_MARK_RE.sub("", own[0], count=1) if own else ""
            text = " ".join(s.strip() for s in [first, *own[1:]] if s.strip())
            if text:
                out.append(Bullet(text, start, depth, section))
    return tuple(out)


def _section_text(blocks: list[Block], source_lines: list[str], name: str) -> str:
    out: list[str] = []
    inside = False
    level = 0
    for b in blocks:
        if b.kind == "heading":
            if inside and b.level <= level:
                break
            if b.text.strip().lower() == name:
                inside, level = True, b.level
            continue
        if inside and b.kind in ("para", "list"):
            out.append(" ".join(line.strip() for line in b.text.split("\n")))
    return "\n".join(out).strip()


def _recall_region(blocks: list[Block]) -> list[Block]:
    """Blocks after a `Notes` heading; without one, all but Goal/Debrief sections."""
    for i, b in enumerate(blocks):
        if b.kind == "heading" and b.text.strip().lower() in ("notes", "recall", "notes:"):
            return blocks[i + 1 :]
    out: list[Block] = []
    skipping, level = False, 0
    for b in blocks:
        if b.kind == "heading":
            if skipping and b.level > level:
                continue
            skipping = b.text.strip().lower() in ("goal", "debrief", "goals")
            level = b.level
            if skipping:
                continue
        if not skipping:
            out.append(b)
    return out


def _split_parts(region: list[Block]) -> list[list[Block]]:
    parts: list[list[Block]] = [[]]
    for b in region:
        if b.kind == "hr":
            parts.append([])
        else:
            parts[-1].append(b)
    return [p for p in parts if p]


def _items(chunk: list[Block], source_lines: list[str]) -> list[_Item]:
    items: list[_Item] = []
    for pid, b in enumerate(chunk):
        if b.kind in ("para", "list", "table", "html"):
            prose = b.kind in ("para", "list")  # a table's or HTML's emoji are data
            for n, line in b.lines(source_lines):
                if line.strip() and not (line.startswith("[^")  # a footnote's text: cards'
                                         and md_rules.FOOTNOTE_DEF_RE.match(line)):
                    items.append(_Item("line", n, n, line, para=pid,
                                       mark=mark_in(line) if prose else -1))
        elif b.kind == "quote":
            body = "\n".join(_QUOTE_PREFIX_RE.sub("", ln) for _, ln in b.lines(source_lines))
            items.append(_Item("quote", b.start, b.end, body.strip(), para=pid))
        elif b.kind == "fence":
            items.append(_Item("code", b.start, b.end, b.text, para=pid, info=b.info))
        elif b.kind == "heading":
            items.append(_Item("heading", b.start, b.end, b.text, para=pid))
    return items


def _single_chapter(text: str) -> str | None:
    found = ph.CHAPTER_RE.findall(text)
    return found[-1] if found else None


def _new_part(index: int, chunk: list[Block], items: list[_Item], blocks: list[Block],
              sections: tuple[Section, ...], goal_chapter: str | None,
              n_lines: int) -> _PartState:
    start = chunk[0].start - (1 if chunk[0].kind == "fence" else 0)
    end = chunk[-1].end + (1 if chunk[-1].kind == "fence" else 0)
    recall_text = "\n".join(it.text for it in items if it.kind == "line" and it.mark < 0)
    opening = "\n".join(it.text for it in items[:4] if it.kind in ("line", "heading"))
    chapter = None
    about = _CHAPTER_ABOUT_RE.search(opening)
    if about:
        chapter = about.group(1)
    elif ph.CHAPTER_RE.search(opening):
        chapter = ph.CHAPTER_RE.search(opening).group(1)  # type: ignore[union-attr]
    low = recall_text.lower()
    fixes = ph.CHAPTER_FIX_RE.findall(recall_text) if "chapter" in low and ph.has_any(
        low, ("actually", "oops", "wait", "correction")) else []
    if fixes:
        chapter = fixes[-1]
    chapter = chapter or goal_chapter
    heading = next((it.text for it in items[:2] if it.kind == "heading"), None)
    topic = topics.part_topic(heading, opening, chapter)
    section = _section_at(blocks, start)
    end = min(end, n_lines)  # an unclosed fence has no closing line to count
    span = Span(start, max(start, end))
    return _PartState(index, span, topic, chapter, section, items,
                      topics.headings_in(sections, span))


def _tutor_chapter(st: _PartState) -> None:
    """The tutor's "good recall of chapter 9" outranks the learner's guess."""
    named = {m for a in st.assessments for m in ph.TUTOR_CHAPTER_RE.findall(a.feedback)}
    if len(named) == 1:
        chapter = named.pop()
        if chapter != st.chapter:
            old = st.topic
            if st.topic == f"Chapter {st.chapter}":
                st.topic = f"Chapter {chapter}"
            st.chapter = chapter
            st.gaps = [replace(g, chapter=chapter, topic=st.topic if g.topic == old else g.topic)
                       for g in st.gaps]


def _section_at(blocks: list[Block], line: int) -> str:
    current = ""
    for b in blocks:
        if b.start > line:
            break
        if b.kind == "heading":
            current = b.text
    return current


# --- the walk ------------------------------------------------------------------------------


def _mark_at_start(text: str) -> tuple[Mark, str] | None:
    lead = _BULLET_RE.match(text)
    rest = text[lead.end():] if lead else text
    m = MARK_RE.match(rest)
    if not m:
        return None
    return EMOJI_MARK[m.group(0)], rest[m.end():].lstrip("\ufe0f").strip().strip("*_").strip()


def _walk(st: _PartState, include_green: bool) -> None:
    items = st.items
    boundary = st.span.start  # first line of recall not yet judged
    i = 0
    while i < len(items):
        it = items[i]
        if it.kind != "line":
            i += 1
            continue
        if it.mark < 0:  # the common case: a line of recall
            _line_cues(st, items, i)
            i += 1
            continue
        lead = _BULLET_RE.match(it.text)
        # an emoji that opens the line may be data while a later one is the mark
        at_start = _mark_at_start(it.text) if lead and lead.end() == it.mark else None
        inline = None if at_start else MARK_RE.match(it.text, it.mark)
        if at_start or inline:
            if at_start:
                mark, after = at_start
                before = ""
            else:
                assert inline is not None
                mark = EMOJI_MARK[inline.group(0)]
                before = it.text[: inline.start()].strip()
                after = it.text[inline.end():].lstrip("\ufe0f").strip()
            asked = _asked_after(items, i + 1) if at_start else None
            j, followups, quote, points = _tail(items, i + (2 if asked else 1))
            judged = Span(boundary, it.start - 1) if boundary < it.start else Span(it.start, it.start)
            if inline is not None:
                judged = Span(judged.start, it.start)
            tail_end = items[j - 1].end
            n_gaps = len(st.gaps)
            _assessment(st, mark, it, before, after, followups, quote, judged,
                        inline is not None, include_green, items[j:], asked, points)
            _with_callouts(st, n_gaps, items[i + 1:j])
            boundary = tail_end + 1
            i = j
            continue
        _line_cues(st, items, i)
        i += 1


def _tail(items: list[_Item], j: int) -> tuple[int, list[str], str, list[tuple[str, str]]]:
    """Follow-up `=>` lines and a `>` quote after an assessment (either order), and the
    points: each `=>` line with the `>` quote right after it (the grader writes one per
    omission, docs/cards.md), so a tail may hold one quote per `=>` line."""
    followups: list[str] = []
    quote = ""
    points: list[tuple[str, str]] = []
    while j < len(items):
        nxt = items[j]
        if nxt.kind == "line" and ph.is_annotation(nxt.text):
            pass  # the grader's "=> unverified: …": part of the tail, answers nothing
        elif nxt.kind == "quote" and md_rules.is_callout(nxt.text):
            pass  # `> [!tip]`: shown after the answer (_with_callouts), never the answer
        elif nxt.kind == "line" and nxt.text.lstrip().startswith(ph.ARROW):
            said = [s for s in ph.split_arrows(nxt.text.lstrip()[2:]) if s]
            followups.extend(said)
            points.append((" ".join(said), ""))
        elif nxt.kind == "quote" and not quote:
            quote = nxt.text
            if points and not points[-1][1]:
                points[-1] = (points[-1][0], nxt.text)
        elif nxt.kind == "quote" and points and not points[-1][1]:
            points[-1] = (points[-1][0], nxt.text)
        else:
            break
        j += 1
    return j, followups, quote, points


def _with_callouts(st: _PartState, first: int, tail: list[_Item]) -> None:
    """Callouts in a mark's tail follow the answer on its cards' backs (a box of their own);
    with no other answer they are the back."""
    boxes = "\n\n".join(md_rules.as_quote(t.text) for t in tail
                         if t.kind == "quote" and md_rules.is_callout(t.text))
    if boxes:
        st.gaps[first:] = [replace(g, answer=f"{g.answer}\n\n{boxes}" if g.answer else boxes,
                                   answer_source=g.answer_source or "callout")
                           for g in st.gaps[first:]]


def _asked_after(items: list[_Item], j: int) -> str | None:
    """The learner's own question on the line after a mark ("One question I have is …", no
    `?` needed), when `=>` lines or a quote answer it."""
    if j + 1 >= len(items) or items[j].kind != "line" or items[j].mark >= 0:
        return None
    text = items[j].text.strip()
    nxt = items[j + 1]
    answered = nxt.kind == "quote" or (nxt.kind == "line" and nxt.text.lstrip().startswith(ph.ARROW))
    return fronts.asked(text) if answered and not text.startswith(ph.ARROW) else None


def _recall_text(st: _PartState, span: Span) -> str:
    # Lines that are gaps of their own have their own cards: leaving them out keeps an
    # assessment's card unchanged when a gap is added above it.
    own_cards = {line for g in st.gaps if g.mark is None for line in range(g.span.start, g.span.end + 1)}
    lo, hi = span.start, span.end
    lines = [it.text.strip() for it in st.items
             if it.kind == "line" and lo <= it.start <= hi and it.start not in own_cards
             and not it.text.lstrip().startswith(ph.ARROW)
             and it.mark < 0]
    return "\n".join(lines)


def _assessment(st: _PartState, mark: Mark, it: _Item, before: str, after: str,
                followups: list[str], quote: str, judged: Span, inline: bool,
                include_green: bool, rest: list[_Item], asked: str | None = None,
                points: list[tuple[str, str]] | None = None) -> None:
    segs = ph.split_arrows(after)
    pre, arrowed = segs[0], [s for s in segs[1:] if s]
    if inline and not arrowed:
        # "… 🟡 (forgot the rest) and Adam …": only the parenthesis is the learner's note
        # to self; what follows it is more recall.
        paren = _PAREN_RE.match(pre)
        feedback = paren.group(1).strip() if paren else ""
    else:
        feedback = arrowed[0] if arrowed else pre
    corrections = tuple(s for s in arrowed[1:] if not ph.is_ack(s))
    answered = bool(followups or quote or corrections)
    question = asked or ((_question_in(feedback) or fronts.asked(feedback)) if answered else None)
    st.assessments.append(Assessment.of(mark, it.start, feedback, corrections, tuple(followups),
                                        quote, question, judged, inline))
    if mark is Mark.GREEN and not include_green:
        return
    recall = _recall_text(st, judged)
    wrote = _join(recall, before) if inline else recall
    context = wrote
    answer, source = _best_answer(quote, followups, corrections, feedback)
    named = ph.named_miss(feedback)
    if named and ph.GO_ON_RE.search(feedback) and not (quote or followups or corrections):
        following = _following_recall(rest)
        if following:
            answer, source = following, "recall"
    anchor = ph.normalise(f"{mark.value} {feedback} {' '.join(corrections)} {question or ''}")
    if not anchor.strip() or len(anchor) < 12:
        anchor = ph.normalise(f"{mark.value} {ph.last_sentences(wrote, 2)}")
    span = Span(judged.start, it.start)
    wrong_line = None if question or inline else _wrong_code_line(st, judged, feedback, corrections)
    topic = st.topic_at(it.start)
    if wrong_line:
        st.gaps.append(_gap(st, GapKind.WRONG_CODE, mark, it.start, span,
                            f"{topic} — what is wrong with this line you wrote?", context,
                            answer, source, anchor=anchor, code=wrong_line))
        return
    if question:
        answer, source = _best_answer(quote, followups, corrections, "")
        st.gaps.append(_gap(st, GapKind.QUESTION, mark, it.start, span, question, context,
                            answer, source, anchor=anchor))
        return
    if not inline:
        split = fronts.omissions(topic, mark.value, feedback, points or [])
        if split:
            for f in split:
                st.gaps.append(_gap(st, GapKind.ASSESSMENT, mark, it.start, span, f.prompt,
                                    context, f.answer, f.source, anchor=f.anchor or anchor))
            return
    kind = GapKind.INLINE_MARK if inline else GapKind.ASSESSMENT
    found = (fronts.confused([feedback, *followups, before, ph.last_sentences(wrote, 2)])
             if fronts.may_confuse([feedback, *followups, before, wrote]) else None)
    front: fronts.Front | None
    if inline and (bool(pre and ph.FORGETFUL_PAREN_RE.search(pre)) or not feedback) and not found:
        near, earlier = fronts.nearest(before, 30)
        front = fronts.Front(f"{topic} — {near} … what else?",
                             context=_join(recall, earlier))  # no gap added since `recall` was read
        if not (quote or followups or arrowed):
            answer, source = None, None
    elif found:
        front = fronts.confusion(topic, [found[2]])
        if answer and found[2] in answer:
            answer = fronts.without(answer, found[2]) or answer
    else:
        front = (fronts.kinds(topic, feedback) or fronts.addition(topic, feedback)
                 or fronts.details(topic, feedback, wrote) or fronts.states(topic, feedback)
                 or fronts.named(topic, feedback, whole=(named,))
                 or fronts.claim(topic, feedback, answer or "", before or wrote))
    if front is None:
        front = fronts.unexplained(topic, before or wrote)
    if front is None:
        near, earlier = fronts.nearest(before or wrote)
        prompt = (f"{topic} — you wrote: “{near}” What is missing or wrong here?" if near
                  else f"{topic} — what is missing or wrong here?")
        front = fronts.Front(prompt, context=earlier if earlier else None)
    if front.answer and source in ("feedback", None):
        answer, source = front.answer, front.source or "feedback"
    elif front.answer and source == "followup" and front.source == "feedback":
        answer = f"{front.answer}\n\n{answer}"  # the feedback states the point, `=>` adds to it
    st.gaps.append(_gap(st, kind, mark, it.start, span, front.prompt,
                        context if front.context is None else front.context, answer, source,
                        anchor=anchor, cloze=front.cloze, term=front.term))


def _wrong_code_line(st: _PartState, judged: Span, feedback: str,
                     corrections: tuple[str, ...]) -> str | None:
    """The recalled code line the tutor's feedback says is wrong (`backwards()` is not a
    method → its line); fronts.wrong_line has the rule."""
    if not ph.CODE_REF_RE.search(" ".join((feedback, *corrections))):
        return None
    code_lines = [ln for it in st.items if it.kind == "code" and it.start in judged
                  for ln in it.text.split("\n")]
    code_lines += [it.text for it in st.items if it.kind == "line" and it.start in judged
                   and it.text.startswith(("    ", "\t"))]
    return fronts.wrong_line([feedback, *corrections], code_lines)


def _question_in(feedback: str) -> str | None:
    if "?" not in feedback:
        return None
    for sent in ph.sentences(feedback):
        if sent.endswith("?") and (ph.QUESTION_VOICE_RE.search(sent) or len(ph.sentences(feedback)) == 1):
            q = _QUESTION_LEAD_RE.sub("", sent).strip() or sent
            return q[:1].upper() + q[1:]
    return None


def _best_answer(quote: str, followups: list[str], corrections: tuple[str, ...],
                 feedback: str) -> tuple[str | None, str | None]:
    useful = [f for f in followups if not ph.is_ack(f)]
    if quote:
        return quote, "quote"
    if useful:
        return "\n\n".join(useful), "followup"
    if corrections:
        return "\n\n".join(corrections), "correction"
    if feedback and not ph.is_ack(feedback) and not ph.is_deferral(feedback):
        return feedback, "feedback"
    return None, None


def _following_recall(rest: list[_Item]) -> str | None:
    """The recall after a "talk about X" mark, up to the next assessment."""
    out: list[str] = []
    for it in rest:
        if it.kind == "line" and it.mark >= 0:
            break
        if it.kind == "line" and not ph.is_annotation(it.text):
            out.append(it.text.strip())
    text = "\n\n".join(_paragraphs(out, rest))
    if not text:
        return None
    if len(text) > _ANSWER_LIMIT:
        cut = text[:_ANSWER_LIMIT]
        text = cut[: max(cut.rfind(". "), cut.rfind("\n")) + 1 or len(cut)].rstrip() + " …"
    return text


def _paragraphs(lines: list[str], items: list[_Item]) -> list[str]:
    paras: dict[int, list[str]] = {}
    wanted = set(lines)
    for it in items:
        if it.kind == "line" and it.text.strip() in wanted:
            paras.setdefault(it.para, []).append(it.text.strip())
    return [" ".join(v) for v in paras.values()]


# --- unmarked gaps inside one line ------------------------------------------------------------


def _line_cues(st: _PartState, items: list[_Item], i: int) -> None:
    it = items[i]
    text = it.text.strip()
    if text.startswith(ph.ARROW):
        return  # an answer line; handled with the line before it
    low = text.lower()
    if (ph.ARROW not in text and "?" not in text and not ph.has_any(low, ph.CUE_WORDS)
            and not (i + 1 < len(items) and items[i + 1].kind == "line"
                     and items[i + 1].text.lstrip().startswith(ph.ARROW))):
        return  # no cue and no answer: most recall lines are just recall
    # An answer may sit on the line itself ("… => X") or on `=>` lines right after it.
    segs = ph.split_arrows(text)
    own, arrowed = segs[0], [s for s in segs[1:] if s]
    j = i + 1
    while j < len(items) and items[j].kind == "line" and items[j].text.lstrip().startswith(ph.ARROW) \
            and not ph.is_annotation(items[j].text):
        arrowed.extend(s for s in ph.split_arrows(items[j].text.lstrip()[2:]) if s)
        j += 1
    answers = [s for s in arrowed if not ph.is_ack(s)]
    before = _para_before(items, i)
    span = Span(it.start, items[j - 1].end)

    forget_words = ph.has_any(low, ph.FORGET_WORDS)
    if forget_words and "name" in low and ph.FORGOT_NAME_RE.search(own):
        term = ph.strip_lead_in(answers[0]) if answers else None
        if term:
            shown = _shown_before(before, own)
            cloze = f"{_sentence(_join(shown, own))} The name is {CLOZE_SLOT}."
            _cloze_gap(st, GapKind.FORGOT_NAME, it.start, span, own, term, cloze, before, shown)
        else:
            _plain_gap(st, GapKind.FORGOT, it.start, span, own, before, f"{ph.last_sentences(_join(before, own), 3)} — what is the name?")
        return
    looked = ph.LOOKED_UP_RE.search(own) if "looked" in low else None
    if looked:
        head = own[: looked.start()].rstrip()
        m = ph.LOOKED_UP_TERM_RE.search(head)
        if m:
            term = m.group("term")
            masked = head[: m.start("term")] + CLOZE_SLOT + head[m.end("term"):] + own[looked.end():]
            shown = _shown_before(before, head)
            cloze = _join(shown, masked.strip())
            _cloze_gap(st, GapKind.LOOKED_UP, it.start, span, head, term, cloze, before, shown)
        return
    selfq = ph.SELF_QUESTION_RE.search(own) if "?" in own else None
    if selfq:
        q = selfq.group("q").strip()
        rest_of_line = own[selfq.end():].strip()
        answer = _join(rest_of_line, _rest_of_para(items, i)) or None
        if answers:
            answer = "\n\n".join(answers)
        prior = ph.last_sentences(own[: selfq.start()], 1) or _prev_line(items, i)
        prompt = f"{st.topic_at(it.start)} — {_join(prior, q)}"
        _plain_gap(st, GapKind.SELF_QUESTION, it.start, span, _join(before, own), "", prompt,
                   answer=answer, source="recall" if answer else None, anchor_text=q + " " + prior)
        return
    forgot = ph.FORGOT_RE.search(own) if forget_words else None
    if forgot:
        answer = "\n\n".join(answers) or None
        asks = fronts.forgotten(st.topic_at(it.start), own, forgot.end())
        if asks:  # "I'm not sure how X is made => …": ask it; the learner's line is below
            _plain_gap(st, GapKind.FORGOT, it.start, span, own, before, asks, answer=answer,
                       source="inline" if answer else None, context=_join(before, own))
        elif answer:
            shown = _shown_before(before, own)
            cloze = f"{_join(shown, own)} → {CLOZE_SLOT}"
            _cloze_gap(st, GapKind.FORGOT, it.start, span, own, ph.strip_lead_in(answer) or answer,
                       cloze, before, shown)
        else:
            head = own[: forgot.start()].rstrip(" ,;(") or ph.last_sentences(before, 2)
            topic = st.topic_at(it.start)
            prompt = f"{topic} — {head} … what did you forget here?" if head else f"{topic} — {own}"
            _plain_gap(st, GapKind.FORGOT, it.start, span, own, before, prompt)
        return
    if answers and own:
        term = ph.strip_lead_in(answers[0]) or answers[0]
        shown = _shown_before(before, own)
        cloze = f"{_join(shown, own)} {CLOZE_SLOT}"
        _cloze_gap(st, GapKind.INLINE_ANSWER, it.start, span, own, term, cloze, before, shown)


def _sentence(text: str) -> str:
    return text if not text or text[-1] in ".!?…:" else text + "."


def _join(*parts: str) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())


def _para_before(items: list[_Item], i: int) -> str:
    """The lines of the same paragraph before item i (context for the gap)."""
    out = []
    k = i - 1
    while k >= 0 and items[k].kind == "line" and items[k].para == items[i].para:
        out.append(ph.split_arrows(items[k].text)[0])  # never another gap's answer
        k -= 1
    return ph.last_sentences(" ".join(reversed(out)), 2)


def _prev_line(items: list[_Item], i: int) -> str:
    """The learner's sentence just before item i, even across a blank line."""
    if i > 0 and items[i - 1].kind == "line" and items[i - 1].mark < 0:
        return ph.last_sentences(ph.split_arrows(items[i - 1].text)[0], 1)
    return ""


def _rest_of_para(items: list[_Item], i: int) -> str:
    out = []
    k = i + 1
    while k < len(items) and items[k].kind == "line" and items[k].para == items[i].para:
        out.append(items[k].text.strip())
        k += 1
    return " ".join(out)


def _shown_before(before: str, own: str) -> str:
    """The sentence before the learner's line, on a cloze's front only when the line is too
    short to stand alone; otherwise it is "what you wrote" (never both)."""
    return ph.last_sentences(before, 1) if len(own.split()) < 8 else ""


def _cloze_gap(st: _PartState, kind: GapKind, line: int, span: Span, own: str, term: str,
               cloze: str, before: str, shown: str) -> None:
    term = term.strip().strip("`").strip()
    answer = cloze.replace(CLOZE_SLOT, term)
    # "What you wrote" is the learner's words the front does not already show.
    context = before[: len(before) - len(shown)] if shown else before
    st.gaps.append(_gap(st, kind, None, line, span, cloze.replace(CLOZE_SLOT, "[…]"),
                        context, answer, "inline", cloze=cloze,
                        term=term, anchor=ph.normalise(f"{kind.value} {own}")))


def _plain_gap(st: _PartState, kind: GapKind, line: int, span: Span, own: str, before: str,
               prompt: str, *, answer: str | None = None, source: str | None = None,
               anchor_text: str | None = None, context: str | None = None) -> None:
    wrote = _join(before, own) if context is None else context
    st.gaps.append(_gap(st, kind, None, line, span, prompt, wrote,
                        answer, source, anchor=ph.normalise(f"{kind.value} {anchor_text or own}")))


def _gap(st: _PartState, kind: GapKind, mark: Mark | None, line: int, span: Span, prompt: str,
         context: str, answer: str | None, source: str | None, *, cloze: str | None = None,
         term: str | None = None, anchor: str, code: str | None = None) -> Gap:
    # "What you wrote": the learner's words the front does not show, in whole sentences.
    context = what_you_wrote(f"{prompt}\n{code}" if code else prompt, context)
    return Gap.of(kind=kind, mark=mark, line=line, span=span, part=st.index,
                  topic=st.topic_at(line), chapter=st.chapter, section=st.section, prompt=prompt,
                  context=context, answer=answer, answer_source=source if answer else None,
                  cloze=cloze, term=term, code=code, anchor=anchor)


# --- code -------------------------------------------------------------------------------------


def _claims(code: str, first_line: int) -> tuple[CodeClaim, ...]:
    return extract_claims(code, first_line)


def _fenced_code(blocks: list[Block], source_lines: list[str]) -> tuple[CodeBlock, ...]:
    out = []
    section = ""
    for b in blocks:
        if b.kind == "heading":
            section = b.text
        elif b.kind == "fence":
            lang = fence_lang(b.info)
            out.append(CodeBlock(b.text, lang, Span(b.start, b.end), True,
                                 _claims(b.text, b.start) if is_python(lang, b.text) else (),
                                 section))
    return tuple(out)


def _pseudo_code(items: list[_Item], section: str) -> list[CodeBlock]:
    """Unfenced code written from memory: a `for …:` head and indented lines after it."""
    found: list[CodeBlock] = []
    run: list[_Item] = []

    def flush() -> None:
        if len(run) >= 2:
            code = "\n".join(r.text.rstrip() for r in run)
            found.append(CodeBlock(_dedent(code), "python", Span(run[0].start, run[-1].end),
                                   False, (), section))
        run.clear()

    for it in items:
        if it.kind != "line":
            flush()
            continue
        indented = it.text.startswith(("    ", "\t"))
        if _CODE_HEAD_RE.match(it.text) or (indented and run and it.start - run[-1].end <= 2):
            run.append(it)
        else:
            flush()
    flush()
    return found


def _dedent(code: str) -> str:
    import textwrap

    return textwrap.dedent(code)
