"""Checks on a card a model wrote (ankigen/llmcards.py): the back says only what the text it
cites says, the front asks one short question and gives nothing of the answer away, and both
keep the notes' own terms (the plain question's names for its subject on the front, the
answer's names, code names and numbers on the card). Each check returns why a card cannot be
used, in words the build summary shows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .model import Gap, GapKind
from .passages import STOPWORDS, WORD_RE, content_words, stem
from .rubric import FRONT_WORDS, IMPERATIVES, QUESTION_WORDS

BACK_SUPPORT = 0.6  # share of the back's content words found in the lines it cites
ANSWER_KEPT = 0.5  # share of the notes' answer's content words a back must keep
_CODE_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?|[A-Za-z_]\w*\(\)|[A-Za-z]+_\w+")
_TICKED = re.compile(r"`([^`\n]+)`")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
# A formula: operands joined by operators ("(n + 2p - k) / s + 1", "1/(1-p)"); its 1-2
# character parts are no key terms alone, the whole is.
_FORMULA = re.compile(r"\(?[\w.]+\)?(?:\s*[-+*/^=]\s*\(?[\w.]+\)?)+")
_SOURCE_LINE = re.compile(r"^\s*— .*$", re.M)  # a quote's "— cnn-notes.md § Pooling"
_NUMBER_WORDS = frozenset("""two three four five six seven eight nine ten eleven twelve twenty
hundred thousand half twice""".split())
# A front starts like a question (rubric.QUESTION_WORDS, rubric.IMPERATIVES) or with a word of
# the notes ("Dropout at inference: …?", "In PyTorch, …"); anything else is a lead-in the
# learner must read past ("Besides gradients adding up, …").
# A second question tacked on: "…, and why?", "… learn weights, and what does it output?"
_SECOND = re.compile(r"\b(?:and|or)\s+(?:what|which|how|why|when|where|who|whom|whose)\b"
                     r"|,\s*(?:and|or)\s+(?:is|are|was|were|do|does|did|can|could|should|would)\b",
                     re.I)
# Words that name no subject (stemmed): a front made only of these asks nothing in particular.
_VAGUE = frozenset(content_words("""wrong missing else forget forgot forgotten remember detail
details tutor recall say said part point know answer here mean means wrote write written line
lines kind kinds happen happens actually right thing things"""))
# A back that stops mid-sentence: a trailing ellipsis, comma, semicolon or colon, or a word
# that cannot end one. (The back is whole sentences; "…" is how a cut answer ends.)
_CUT = re.compile(r"(?:…|\.\.\.|[,;:]|\b(?:and|or|but|the|a|an|of|to|with|by|for))\s*$", re.I)
SUBJECT_KEPT = 0.5  # share of the plain question's subject words a model front must keep
_QUOTE = re.compile(r'“[^”]*”|"[^"]*"')  # the learner's words quoted on a front


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
        names = _names(answer)
        candidates = names | {n.rstrip("()") for n in names}
        candidates |= {m.group(0) for m in re.finditer(r"[A-Za-z]+(?:-[A-Za-z]+)+", prose)}
        candidates |= {m.group(0) for m in _NUMBER.finditer(prose)}
        candidates |= {m.group(0) for m in _FORMULA.finditer(prose) if not m.group(0).isalpha()}
        candidates |= {w for w in re.findall(r"[A-Za-z]+", prose) if w.lower() in _NUMBER_WORDS}
        # 1-2 characters ("2", "x") say too little to give an answer away, and a front
        # may need them to ask at all ("how does a stride of 2 change the output?").
        terms |= {c for c in candidates if len(c) > 2 and not _holds(learner, c)}
    return {t for t in terms if t}


def _pairs(text: str) -> dict[tuple[str, str], str]:
    """Content words (stemmed) truly side by side, only a space between them → the words
    as written. A stop word or punctuation between two words ends the pair: "layer has no
    trainable" and "call is loss" are not phrases, "trainable parameters" is."""
    out: dict[tuple[str, str], str] = {}
    last: tuple[str, str, int] | None = None  # (stem, word, end) of the previous word
    for m in WORD_RE.finditer(text):
        w = m.group(0)
        if w.lower() in STOPWORDS or (len(w) < 3 and not w.isdigit()):
            last = None
            continue
        if last is not None and not text[last[2]:m.start()].strip():
            out[(last[0], stem(w))] = f"{last[1]} {w}"
        last = (stem(w), w, m.end())
    return out


def leaked_phrase(front: str, answers: Sequence[str], allowed: str) -> str:
    """Two content words side by side in the front and in an answer, not both already in
    the learner's words or the plain question (`allowed`): the answer's wording, given away."""
    known = set(content_words(allowed))
    said = set().union(*(_pairs(a) for a in answers)) if answers else set()
    for pair, shown in _pairs(front).items():
        if pair in said and not (pair[0] in known and pair[1] in known):
            return shown
    return ""


def left_out(answer: str, back: str) -> str:
    """Why a back drops the notes' answer, or "": it must keep at least ANSWER_KEPT of the
    content words of the answer's first paragraph (the point; later paragraphs and the
    quote's "— file § heading" line are often another gap's, or where it came from)."""
    first = answer.strip().split("\n\n")[0]
    point = sorted(set(content_words(_SOURCE_LINE.sub("", first))))
    if not point:
        return ""
    have = set(content_words(back))
    kept = sum(w in have for w in point)
    if kept / len(point) < ANSWER_KEPT:
        return (f"the back keeps {kept} of the {len(point)} content words of the notes' answer "
                f"(less than {ANSWER_KEPT:.0%}): it leaves the answer out")
    return ""


_END_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?!\w|\.\d)")  # "0.999." ends a sentence
_CAMEL = re.compile(r"\b[A-Za-z]*[A-Z][a-z0-9]*[A-Z]\w*\b")  # ResNet, AdamW, RMSProp, SGD


def dropped_term(answer: str, front: str, back: str) -> str:
    """The first key term of the notes' answer (its first paragraph, as `left_out` reads it)
    that the card leaves out, or "": its code names, hyphenated terms, numbers and names
    written with capitals inside ("ResNet", "SGD"), each on the back or, where it sets the
    scene ("In ResNet, what are …?"), on the front."""
    first = _SOURCE_LINE.sub("", answer.strip().split("\n\n")[0])
    prose = _TICKED.sub(" ", first)
    terms = _names(first) | {m.group(0) for m in _CAMEL.finditer(prose)}
    terms |= {m.group(0) for m in re.finditer(r"[A-Za-z]+(?:-[A-Za-z]+)+", prose)}
    terms |= {m.group(0) for m in _END_NUMBER.finditer(prose)}
    card = f"{front}\n{back}"
    for term in sorted(terms):
        if not _holds(card, term) and not _holds(card, term.rstrip("()")):
            return term
    return ""


def _same(a: str, b: str) -> bool:
    """One word in two forms: equal stems, or one stem the start of the other ("shuffl" and
    "shuffle"), at least four letters."""
    return a == b or (min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a)))


def subject(plain: str, topic: str, quoted: str = "") -> list[str]:
    """The words the plain question names its subject with (stemmed): its content words
    without the "Topic — " it starts with, the learner's words it quotes (`quoted`, and any
    “…”), and words that name nothing ("what is wrong here?" has none)."""
    if topic and plain.startswith(topic + " — "):
        plain = plain[len(topic) + 3:]
    skip = _VAGUE | set(content_words(quoted))
    return [w for w in dict.fromkeys(content_words(_QUOTE.sub(" ", plain))) if w not in skip]


# Stop words that say which one is asked about: "the other quirk", "another trick".
_WHICH = frozenset(("other", "another"))
_TOKEN = re.compile(r"\w[\w'-]*")


def _term_words(text: str) -> list[tuple[str, int, int]]:
    """(stem, start, end) of each word of `text`, lowercased."""
    return [(stem(m.group(0).lower()), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def subject_phrases(plain: str, topic: str, quoted: str = "") -> list[str]:
    """The notes' terms the plain question names its subject with: two words truly side by
    side (only a space between) that are content words, or "other"/"another" before one
    ("weight decay", "residual connections", "the other quirk"), as "stem stem"; not the
    topic's, the learner's words it quotes (`quoted`, any “…”), numbers or words that
    name nothing."""
    if topic and plain.startswith(topic + " — "):
        plain = plain[len(topic) + 3:]
    plain = _QUOTE.sub(" ; ", plain)
    mine = set(content_words(quoted))

    def naming(w: str) -> bool:
        short = len(w) < 3 and not (re.search(r"\d", w) and re.search(r"[a-z]", w))  # "L2" is one
        return w in _WHICH or (w not in STOPWORDS and not short and not w.isdigit()
                               and w not in _VAGUE)

    words = _term_words(plain)
    out = []
    for (a, first, end), (b, start, last) in zip(words, words[1:], strict=False):
        if (naming(a) and naming(b) and b not in _WHICH and not plain[end:start].strip()
                and not (a in mine and b in mine)):
            out.append(plain[first:last])
    return list(dict.fromkeys(out))


def _like(a: str, b: str) -> bool:
    """One word in two forms: `_same`, or a short form ("go", "goe")."""
    return _same(a, b) or (min(len(a), len(b)) >= 2 and abs(len(a) - len(b)) <= 2
                           and (a.startswith(b) or b.startswith(a)))


def dropped_phrase(front: str, phrases: Sequence[str]) -> str:
    """The first of `phrases` the front does not keep: its two words in order, at most one
    word between them ("bigger initialization variance" keeps "bigger variance"; "what
    quirk, other than …" does not keep "other quirk")."""
    words = [w for w, _, _ in _term_words(front)]
    for phrase in phrases:
        a, b = (w for w, _, _ in _term_words(phrase))
        if not any(_like(words[i], a) and any(_like(w, b) for w in words[i + 1:i + 3])
                   for i in range(len(words))):
            return phrase
    return ""


def question_form(front: str, notes: str, code: str = "") -> str:
    """Why `front` is not one direct question, or "": it starts like a question (a question
    word, an imperative, or a word of the notes), asks (a "?" or an imperative), asks one
    thing, and names something in particular in its own words (a quote of the learner's
    aside; `code`, the line a wrong-code card shows under it, counts)."""
    first = re.match(r"[\W_]*([\w'-]+)", front)
    word = first.group(1) if first else ""
    low = word.lower()
    if low not in QUESTION_WORDS and low not in IMPERATIVES and not _holds(notes, word):
        return f"the front starts with {word!r}, not with a question word"
    if "?" not in front and low not in IMPERATIVES:
        return "the front is not a question"
    second = _SECOND.search(front)
    if second:
        return f"the front asks two things ({second.group(0).strip(', ')!r})"
    if not [w for w in content_words(_QUOTE.sub(" ", front) + " " + code) if w not in _VAGUE]:
        return "the front asks nothing in particular"
    return ""


def verify(gap: Gap, front: str, back: str | None, cites: Sequence[str], *,
           texts: Mapping[str, str], learner: str, notes: str, quoted: str = "") -> str:
    """Why this model card cannot be used, or "" when it can. `texts`: what each id the
    model could cite stands for; `learner`: what a front may repeat (the learner's words and
    the plain question); `notes`: the whole notes file (code names on the front); `quoted`:
    the learner's sentences the plain question quotes (no part of its subject)."""
    front = " ".join(front.split())
    words = len(re.findall(r"[\w'-]+", front))
    if words > FRONT_WORDS:
        return f"the front is {words} words long (more than {FRONT_WORDS})"
    if front.count("?") > 1:
        return "the front asks more than one question"
    if words < 3:
        return "the front asks nothing"
    for name in sorted(_names(front)):
        if name not in notes and name.rstrip("()") not in notes:
            return f"the front names {name!r}, which the notes do not hold exactly"
    form = question_form(front, notes, gap.code or "" if gap.kind is GapKind.WRONG_CODE else "")
    if form:
        return form
    named = subject(gap.prompt, gap.topic, quoted)
    if named:
        asked = content_words(front)
        kept = [w for w in named if any(_same(w, a) for a in asked)]
        if len(kept) < SUBJECT_KEPT * len(named):
            return (f"the front keeps {len(kept)} of the {len(named)} words the plain question "
                    f"names its subject with: it asks about something else")
    dropped = dropped_phrase(front, subject_phrases(gap.prompt, gap.topic, quoted))
    if dropped:
        return (f"the front drops {dropped!r}, the notes' words the plain question names its "
                f"subject with")
    if back is None:
        if gap.unanswered:
            return ""  # a better question; the back still says the notes hold no answer
        return "no back, though the notes answer this gap"
    back = back.strip()
    if not back:
        return "the back is empty"
    cut = _CUT.search(back)
    if cut:
        return f"the back is cut off (it ends {' '.join(back.split()[-4:])!r})"
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
    missing = left_out(gap.answer or "", back)
    if missing:
        return missing
    term = dropped_term(gap.answer or "", front, back)
    if term:
        return f"the back drops {term!r}, a term of the notes' answer"
    said = content_words(back)
    if said:
        have = set(content_words(cited))
        found = sum(w in have for w in said)
        if found / len(said) < BACK_SUPPORT:
            return (f"the lines it cites hold {found} of the back's {len(said)} content words "
                    f"(less than {BACK_SUPPORT:.0%}): unverifiable")
    return ""
