"""Checks on a card a model wrote (ankigen/llmcards.py): the back says only what the text it
cites says, the front asks one short question and gives nothing of the answer away. Each check
returns why a card cannot be used, in words the build summary shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .model import Gap
from .passages import STOPWORDS, WORD_RE, content_words, stem

FRONT_WORDS = 60  # the card rubric's bound on a front (docs/cards.md)
BACK_SUPPORT = 0.6  # share of the back's content words found in the lines it cites
_CODE_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?|[A-Za-z_]\w*\(\)|[A-Za-z]+_\w+")
_TICKED = re.compile(r"`([^`\n]+)`")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
_NUMBER_WORDS = frozenset("""two three four five six seven eight nine ten eleven twelve twenty
hundred thousand half twice""".split())


def _names(text: str) -> set[str]:
    """Code names as written: `ticked` spans and dotted/called/underscored identifiers."""
    found = {m.group(1).strip() for m in _TICKED.finditer(text)}
    found |= {m.group(0) for m in _CODE_NAME.finditer(text)}
    return {n for n in found if n and n.lower() not in ("e.g", "i.e")}


def _holds(text: str, term: str) -> bool:
    """`term` in `text` as a whole term (not `zero_grad` inside `zero_grads`)."""
    return re.search(rf"(?<![\w.]){re.escape(term)}(?!\w)", text, re.I) is not None


def key_terms(gap: Gap, back: str, learner: str) -> set[str]:
    """What the answer tells that the learner's words do not: the gap's term, and the code
    names, hyphenated terms and numbers of the answer (the notes' and the model's) that the
    learner did not write."""
    terms = {gap.term.strip()} if gap.term and gap.term.strip() else set()
    for answer in (gap.answer or "", back):
        prose = _TICKED.sub(" ", answer)
        candidates = _names(answer) | {n.rstrip("()") for n in _names(answer)}
        candidates |= {m.group(0) for m in re.finditer(r"[A-Za-z]+(?:-[A-Za-z]+)+", prose)}
        candidates |= {m.group(0) for m in _NUMBER.finditer(prose)}
        candidates |= {w for w in re.findall(r"[A-Za-z]+", prose) if w.lower() in _NUMBER_WORDS}
        terms |= {c for c in candidates if len(c) >= 1 and not _holds(learner, c)}
    return {t for t in terms if t and not (t.isdigit() and len(t) == 1 and t in learner)}


def _pairs(text: str) -> dict[tuple[str, str], str]:
    """Adjacent content words (stemmed) → the words as written."""
    seen: list[tuple[str, str]] = []
    for m in WORD_RE.finditer(text):
        w = m.group(0)
        if w.lower() in STOPWORDS or (len(w) < 3 and not w.isdigit()):
            continue
        seen.append((stem(w), w))
    return {(a[0], b[0]): f"{a[1]} {b[1]}" for a, b in zip(seen, seen[1:])}


def leaked_phrase(front: str, answers: Sequence[str], allowed: str) -> str:
    """Two content words side by side in the front and in an answer, not both already in
    the learner's words or the plain question (`allowed`): the answer's wording, given away."""
    known = set(content_words(allowed))
    said = set().union(*(_pairs(a) for a in answers)) if answers else set()
    for pair, shown in _pairs(front).items():
        if pair in said and not (pair[0] in known and pair[1] in known):
            return shown
    return ""


def verify(gap: Gap, front: str, back: str | None, cites: Sequence[str], *,
           texts: Mapping[str, str], learner: str, notes: str) -> str:
    """Why this model card cannot be used, or "" when it can. `texts`: what each id the
    model could cite stands for; `learner`: what a front may repeat (the learner's words and
    the plain question); `notes`: the whole notes file (code names on the front)."""
    front = " ".join(front.split())
    words = len(re.findall(r"[\w'-]+", front))
    if words > FRONT_WORDS:
        return f"the front is {words} words long (more than {FRONT_WORDS})"
    if front.count("?") > 1:
        return "the front asks more than one question"
    if len(re.findall(r"[\w'-]+", front)) < 3:
        return "the front asks nothing"
    for name in sorted(_names(front)):
        if name not in notes and name.rstrip("()") not in notes:
            return f"the front names {name!r}, which the notes do not hold exactly"
    if back is None:
        if gap.unanswered:
            return ""  # a better question; the back still says the notes hold no answer
        return "no back, though the notes answer this gap"
    back = back.strip()
    if not back:
        return "the back is empty"
    leaked = sorted(t for t in key_terms(gap, back, learner) if _holds(front, t))
    if leaked:
        return f"the front gives away the answer ({leaked[0]!r})"
    phrase = leaked_phrase(front, [back, gap.answer or ""], learner)
    if phrase:
        return f"the front gives away the answer ({phrase!r})"
    if not cites:
        return "the back cites no line"
    unknown = [c for c in cites if c not in texts]
    if unknown:
        return f"the back cites {unknown[0]!r}, which is not one of this gap's lines or passages"
    cited = " ".join(texts[c] for c in cites)
    for name in sorted(_names(back)):
        if name not in cited and name.rstrip("()") not in cited:
            return f"the back names {name!r}, which the lines it cites do not hold exactly"
    for number in sorted({m.group(0) for m in _NUMBER.finditer(_TICKED.sub(" ", back))}):
        if not _holds(cited, number):
            return f"the back says {number}, which the lines it cites do not"
    said = content_words(back)
    if said:
        have = set(content_words(cited))
        found = sum(w in have for w in said)
        if found / len(said) < BACK_SUPPORT:
            return (f"the lines it cites hold {found} of the back's {len(said)} content words "
                    f"(less than {BACK_SUPPORT:.0%}): unverifiable")
    return ""
