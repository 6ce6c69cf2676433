"""The card rubric's rules that need no label (docs/cards.md, "The rubric"): one question,
not a generic one, that asks something of its own, short, not starting mid-word, code names
as in the notes, no answer on the front, a back not cut off, and "what you wrote" neither
empty (while the learner wrote more than the front shows) nor a copy of the front.

One definition for both users: bench/card_rubric.py scores every card of the labelled set
with `rubric` (and adds the rules that need a label), and the model's card writer
(llmcards.py) keeps a gap's offline card when the model's card breaks a rule here that the
offline card meets (`worse`), so a model never makes a card worse by these rules.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Set

from .model import Gap, GapKind

FRONT_WORDS = 60
# Fronts that ask nothing in particular: the rubric's "one question about exactly the point".
GENERIC = ("missing or wrong", "what about those details", "what about this",
           "what is wrong here", "what did you forget here")
# How a question starts: a question word, an auxiliary ("Does …?") or an imperative ("Name …").
QUESTION_WORDS = frozenset("""what which how why when where who whom whose is are was were do
does did can could should would will has have""".split())
IMPERATIVES = frozenset("name give state list explain describe define".split())
# First words a front may start with that the notes need not hold (those, an article, "In
# PyTorch, …", "You wrote: …"); any other first word must be a word of the notes, or the
# front starts mid-word ("…ing the kernel", "ides the map").
STARTERS = QUESTION_WORDS | IMPERATIVES | frozenset("the a an in on you your one".split())
_CODE_SPAN = re.compile(r"`[^`]*`")
_CODE_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?|[A-Za-z_]\w*\(\)")
_WORD = re.compile(r"[\w'-]+")
_NORM = re.compile(r"[^\w]+")
_RULE = re.compile(r"[:(['\[]")
_MARKS = ("=>", ">", "#", "🟢", "🟡", "🔴")


def front_of(gap: Gap) -> str:
    """What the front shows, as text: the prompt (a cloze's term shown as […]), and under a
    wrong-code card's question the code line it asks about."""
    text = gap.prompt
    if gap.kind is GapKind.WRONG_CODE and gap.code:
        text += "\n" + gap.code
    return text


def back_of(gap: Gap) -> str:
    return gap.answer or ""


def norm(text: str) -> str:
    """Lowercase words, anything else one space."""
    return " ".join(_NORM.sub(" ", text.lower()).split())


def rule_of(miss: str) -> str:
    """The rule a miss names: "short: 64 words …" → "short", "front lacks 'x'" → "front lacks"."""
    return _RULE.split(miss, maxsplit=1)[0].strip()


def _prose(front: str, gap: Gap) -> str:
    text = _CODE_SPAN.sub(" ", front)
    if gap.code:
        text = text.replace(gap.code, " ")
    return text


def _asks(gap: Gap, front: str) -> str:
    """The front without its leading topic ("Topic — …")."""
    if gap.topic and front.startswith(gap.topic + " — "):
        return front[len(gap.topic) + 3:]
    return front


def _unshown(gap: Gap, notes: str, others: Set[int], front: str) -> int:
    """How many of the learner's words in the gap's span the front does not show (lines
    that are gaps of their own excepted: they have their own cards)."""
    lines = notes.split("\n")
    shown = set(norm(front).split())
    words = 0
    for n in range(gap.span.start, gap.span.end + 1):
        line = lines[n - 1].strip() if 0 < n <= len(lines) else ""
        if n in others or not line or line.startswith(_MARKS):
            continue
        words += sum(1 for w in norm(line.split("=>")[0]).split() if w not in shown)
    return words


def rubric(gap: Gap, notes: str, others: Set[int] = frozenset()) -> list[str]:
    """The rules `gap`'s card breaks, whatever a label says, each as "rule: why". `notes`:
    the whole notes file; `others`: lines that are other unmarked gaps' own (their words are
    on their own cards, not missing from this one's "what you wrote")."""
    broke = []
    front = front_of(gap)
    prose = _prose(front, gap)
    if prose.count("?") > 1:
        broke.append("one question: more than one '?' on the front")
    low = prose.lower()
    generic = [g for g in GENERIC if g in low]
    if generic:
        broke.append(f"one question: generic front ({generic[0]!r})")
    asks = _asks(gap, prose)
    if len(_WORD.findall(asks.replace("[…]", ""))) < 3:
        broke.append("topic only: the front asks nothing of its own")
    words = len(_WORD.findall(prose))
    if words > FRONT_WORDS:
        broke.append(f"short: {words} words of prose on the front (> {FRONT_WORDS})")
    first = asks.lstrip(" “\"'(…").split(" ", 1)[0]
    head = _WORD.match(first)
    if asks.lstrip().startswith("…") or (head and not re.search(
            rf"(?<![\w]){re.escape(head.group(0))}(?![\w])", notes, re.I)
            and head.group(0).lower() not in STARTERS):
        broke.append(f"starts mid-word: {asks[:30]!r}")
    for name in _CODE_NAME.findall(front):
        if name not in notes and not name.startswith(("e.g", "i.e")):
            broke.append(f"code names exact: {name!r} is not in the notes")
    if gap.term and gap.term.lower() in prose.lower():
        broke.append(f"answer on the front: {gap.term!r}")
    back = back_of(gap)
    if back:
        tail = back.rstrip()
        if tail.endswith(("…", "...", ",", ";")) or re.search(r"\b(?:and|or|the|a)$", tail):
            broke.append(f"back cut: ends {tail[-30:]!r}")
    wrote = gap.context.strip()
    if not wrote:
        if _unshown(gap, notes, others, prose) >= 5:
            broke.append("what you wrote: empty, though the learner wrote more than the front shows")
    else:
        w, f = norm(wrote).split(), norm(prose.replace("[…]", " ")).split()
        same = difflib.SequenceMatcher(None, w, f, autojunk=False).ratio()
        if " ".join(w) in " ".join(f) or same >= 0.75:
            broke.append(f"what you wrote: a copy of the front ({same:.0%} alike)")
    return broke


def worse(card: Gap, offline: Gap, notes: str, others: Set[int] = frozenset()) -> str:
    """The first miss of `card` (a model's wording of `offline`'s gap) by a rule `offline`
    meets, or "": a rule the offline card already breaks is no reason to keep it."""
    kept = {rule_of(m) for m in rubric(offline, notes, others)}
    return next((m for m in rubric(card, notes, others) if rule_of(m) not in kept), "")
