"""What a mark judges and what a front asks: front selection, offline (docs/cards.md).

parse.py finds the gaps; this module decides what each card asks. Each function reads one
feedback line, one learner's line or one sentence, and returns a front (or None: not its
pattern). The front asks for exactly the point flagged and never shows the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import phrases as ph

SLOT = "\ue000"  # parse.CLOZE_SLOT: where {{c1::term}} goes


@dataclass(frozen=True)
class Front:
    prompt: str
    answer: str | None = None  # the back, when the front's own pattern says where it is
    source: str | None = None
    cloze: str | None = None  # with SLOT where the term goes
    term: str | None = None
    question: bool = False  # the learner's own question: a QUESTION gap
    context: str | None = None  # "what you wrote", when it must differ from the default
    anchor: str | None = None  # for fronts that split one mark into several cards


# --- the learner's own question ------------------------------------------------------------

_ASK_LEAD_RE = re.compile(
    r"^(?:(?:one|my|a|the|another)\s+(?:other\s+)?question\s+(?:I\s+have\s+|I'?ve\s+got\s+)?"
    r"(?:is|was)\b|question\s*:|I\s+wonder(?:ed)?\b|I'?m\s+wondering\b)\s*[,:]?\s*", re.I)
_GUESS_RE = re.compile(r"^(?:my\s+guess\s+(?:is|was)|I\s+guess|I\s+suspect)\s*[,:]?\s*(?:that\s+)?"
                       r"(?P<g>.+)$", re.I)
_WH = r"how|why|what|where|when|which|who|whether|if"
_AUX = r"is|are|was|were|does|do|did|can|could|should|would|will|has|have"


def asked(text: str) -> str | None:
    """The learner's question in `text`, with or without `?`, lead-ins taken off."""
    first = ph.first_sentence(text)
    m = _ASK_LEAD_RE.match(first)
    if m and len(first) > m.end() + 3:
        return direct_question(first[m.end():])
    g = _GUESS_RE.match(first)
    if g:
        return f"Is it right that {g.group('g').rstrip(' .?!')}?"
    return None


def direct_question(clause: str) -> str:
    """`how the set is made` → `How is the set made?`; `what X does` → `What does X do?`."""
    c = clause.strip().rstrip(" .?!")
    m = re.match(rf"^(?P<wh>{_WH})\s+(?P<rest>.+)$", c, re.I)
    if m:
        wh, rest = m.group("wh").lower(), m.group("rest")
        if wh in ("whether", "if"):
            return f"Is it so that {rest}?"
        aux = re.match(rf"^(?P<np>(?:\S+\s+){{0,4}}?\S+)\s+(?P<aux>{_AUX})\s+(?P<tail>.+)$", rest)
        if aux and not re.match(rf"^(?:{_AUX})\b", rest, re.I) and aux.group("aux") != "does":
            c = f"{wh} {aux.group('aux')} {aux.group('np')} {aux.group('tail')}"
        elif re.match(r"^(?P<np>(?:\S+\s+){0,3}?\S+)\s+does$", rest):
            c = f"{wh} does {rest[: -len(' does')]} do"
        else:
            verb = re.match(r"^(?P<np>(?:[\w.'-]+\s+){0,3}?[\w.'-]+)\s+(?P<v>[a-z]+[^s\s])s\s+(?P<tail>.+)$",
                            rest)
            if verb and wh != "what" and not re.search(rf"\b(?:{_AUX})\b", verb.group("np")):
                c = f"{wh} does {verb.group('np')} {_stem_verb(verb.group('v'))} {verb.group('tail')}"
            else:
                c = f"{wh} {rest}"
    return c[:1].upper() + c[1:] + "?"


def _stem_verb(v: str) -> str:
    """A verb's base form from its "-s" form less the "s": "goe" (goes) → "go", "pushe" →
    "push", "passe" → "pass"; "take", "use" stay."""
    return v[:-1] if v.endswith("e") and v[:-1].endswith(("o", "sh", "ch", "ss", "x", "z")) else v


# --- feedback that holds the point -------------------------------------------------------

_KINDS_RE = re.compile(
    r"\bthere\s+are\s+(?P<n>\d+|two|three|four|five|six|seven|several|many)\s+"
    r"(?P<what>kinds|types|sorts|ways|forms|families)\s+(?:of\s+)?(?P<x>[^:]{2,60}?)\s*:\s*(?P<list>.+)$",
    re.I)
_CONFUSE_RE = re.compile(
    r"\bI\s+(?:was|am|keep|kept|have\s+been)\s+(?:confusing|mixing\s+up|mixing|conflating)\s+"
    r"(?P<a>.+?)\s+(?:with|and)\s+(?P<b>.+?)(?=\s+because\b|\s+since\b|\s*[,.;!?(]|$)", re.I)
_DETAILS_RE = re.compile(r"\b(?:those|these|the|that)\s+details?\b", re.I)
_STATES_RE = re.compile(
    r"(?:^|\bbut\s+|[,;:]\s*)(?P<x>[^,;:]+?)\s+is\s+(?P<w>how|what|why|where|when)\s+"
    r"(?P<y>[^.;!?]+)", re.I)
_STATES_HINT_RE = re.compile(r"\sis\s+(?:how|what|why|where|when)\s", re.I)
_ADDITION_RE = re.compile(
    r"^(?:(?:oh|ah)\s*,?\s+)?(?:yes|yeah|right|also)\b[\s,!.]*(?:and\s+)?(?:also\s+)?(?P<body>.+)$|"
    r"^and\s+also\b[\s,]*(?P<body2>.+)$", re.I)
_CODE_NAME_RE = re.compile(r"`[^`]+`|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?|[A-Za-z_]\w*\(\)")
_SUBJECT_STOP = frozenset(
    "usually often always also has have had is are was were needs need should must can could "
    "will would to with within before after in on for which that so when as by gets get "
    "goes go has comes come does do".split())
_LEFT_OUT_RE = re.compile(r"^\s*you\s+left\s+out\s+(?P<list>.+?)\s*\.?\s*$", re.I)
_CONTRA_RE = re.compile(r"^\s*(?:not\s+what\s+the\s+sources?\s+says?|no\b|wrong\b|incorrect\b|"
                        r"not\s+quite\b|not\s+really\b)", re.I)
# Feedback that calls something the learner wrote wrong, not at its start: "Manhattan is
# wrong", "you have C backwards", "the second half isn't right".
_SAYS_WRONG_RE = re.compile(r"\b(?:is|are|was|were)\s+(?:wrong|incorrect|not\s+right|backwards)\b"
                            r"|\b(?:isn'?t|aren'?t)\s+right\b|\byou\s+(?:have|got|had)\s+[^.;:]{1,40}?\s+"
                            r"(?:backwards|the\s+wrong\s+way\s+round|the\s+other\s+way\s+round)\b",
                            re.I)
_LEAD_OFF_RE = re.compile(r"^[^:]{0,60}\bdetails?\s*:\s*|^(?:not\s+what\s+the\s+sources?\s+says?)\s*:\s*",
                          re.I)
_WORD_RE = re.compile(r"[A-Za-z][\w'-]{3,}")


def cap(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:]


def kinds(topic: str, feedback: str) -> Front | None:
    """"there are 4 kinds of RNN: a, b, c and d" → "what are the 4 kinds of RNN?"."""
    m = _KINDS_RE.search(feedback)
    if not m:
        return None
    x = m.group("x").strip()
    return Front(f"{topic} — what are the {m.group('n')} {m.group('what').lower()} of {x}?",
                 answer=cap(feedback[m.start():]), source="feedback")


def may_confuse(texts: list[str]) -> bool:
    """Whether any text could hold "I was confusing …": a cheap substring test, before
    sentences are split (most marks have none, and this runs for every mark of every note)."""
    joined = "\n".join(texts)  # no hint holds a newline: one found is in one text
    return ("onfusing" in joined or "ixing" in joined or "onflating" in joined
            or "ONFUSING" in joined or "IXING" in joined or "ONFLATING" in joined)


def confused(texts: list[str]) -> tuple[str, str, str] | None:
    """"I was confusing X with Y because Z" → (X, Y, the sentence)."""
    if not may_confuse(texts):
        return None
    for text in texts:
        for sent in ph.sentences(text):
            m = _CONFUSE_RE.search(sent)
            if m:
                return m.group("a").strip(" `"), m.group("b").strip(" `"), sent
    return None


def confusion(topic: str, texts: list[str]) -> Front | None:
    found = confused(texts)
    if not found:
        return None
    a, b, _ = found
    return Front(f"{topic} — what is the difference between {a} and {b}?")


def without(text: str, sentence: str) -> str:
    """`text` minus one of its sentences (the learner's "I was confusing …" in an answer)."""
    return " ".join(s for s in ph.sentences(text) if s != sentence).strip()


def details(topic: str, feedback: str, wrote: str) -> Front | None:
    """"poor recall of those details" → the details named by the sentence the mark follows."""
    if not _DETAILS_RE.search(feedback):
        return None
    clause = last_clause(ph.last_sentences(wrote, 1, limit=10_000))
    if not clause:
        return None
    rest = _LEAD_OFF_RE.sub("", feedback, count=1).strip()
    answer = cap(rest) if rest and rest != feedback.strip() else None
    return Front(f"{topic} — “{clause}”: what are the details, and why?", answer=answer,
                 source="feedback" if answer else None)


def last_clause(sentence: str, words: int = 26) -> str:
    """The end of a sentence, whole clauses only, at most `words` words."""
    s = sentence.strip()
    if len(s.split()) <= words:
        return s
    pieces = re.split(r",\s+|;\s+|\s+(?=(?:so|and so|which|because)\s)", s)
    out: list[str] = []
    for piece in reversed(pieces):
        if out and len(" ".join([piece, *out]).split()) > words:
            break
        out.insert(0, piece)
    text = ", ".join(out)
    text = re.sub(r"^(?:so|and|and so|but|which)\s+", "", text, flags=re.I)
    return text if len(text.split()) <= words + 6 else ""


def states(topic: str, feedback: str) -> Front | None:
    """"fine, but X is how you Y" → "how do you Y?" (X is the answer, never on the front)."""
    if not _STATES_HINT_RE.search(feedback):
        return None  # what every match holds: the slower search would find nothing
    m = _STATES_RE.search(feedback)
    if not m or len(m.group("x").split()) > 8:
        return None
    w, y = m.group("w").lower(), m.group("y").strip()
    if w == "how" and re.match(r"^(?:you|we|one)\b", y, re.I):
        ask = f"how do {y}"
    else:
        ask = f"{w} {y}"
    return Front(f"{topic} — {ask}?", answer=cap(m.group(0).lstrip(",;: ").removeprefix("but ")),
                 source="feedback")


def addition(topic: str, feedback: str) -> Front | None:
    """"Oh yes, and we run inference within torch.no_grad() …": the added point, by its subject."""
    m = _ADDITION_RE.match(feedback.strip())
    if not m:
        return None
    head = feedback.strip().lower()
    if not (head.startswith(("oh", "ah", "and also", "also")) or re.match(r"^(?:yes|yeah|right)\W+and\b", head)):
        return None
    body = cap((m.group("body") or m.group("body2") or "").strip())
    if len(body.split()) < 4:
        return None
    name = _CODE_NAME_RE.search(body)
    if name:
        term = name.group(0).strip("`")
        cloze = body[: name.start()] + SLOT + body[name.end():]
        return Front(cloze.replace(SLOT, "[…]"), answer=body, source="feedback", cloze=cloze,
                     term=term)
    subject = _subject(body)
    if not subject:
        return None
    return Front(f"{topic} — what else is there to know about {subject}?", answer=body,
                 source="feedback")


def _subject(body: str) -> str:
    words = body.split()
    if words and words[0].lower() in ("we", "you", "i", "they", "one"):
        words = words[2:]  # "we run inference …" → "inference …"
    out: list[str] = []
    for w in words:
        bare = w.strip(",.;:").lower()
        if bare in _SUBJECT_STOP or len(out) >= 5:
            break
        out.append(w.strip(",.;:"))
        if w.endswith((",", ".", ";", ":")):
            break
    return " ".join(out)


def named(topic: str, feedback: str, whole: tuple[str | None] | None = None) -> Front | None:
    """Feedback that names what was missing ("you forgot X", "talk about X"). `whole`: the
    caller's `ph.named_miss(feedback)`, when it has it (one regex search less)."""
    if ":" in feedback:
        x = ph.named_miss(feedback.split(":", 1)[0])
    else:
        x = whole[0] if whole is not None else ph.named_miss(feedback)
    if not x:
        return None
    answer = None
    if ":" in feedback:
        after = feedback.split(":", 1)[1].strip()
        answer = cap(after) if len(after.split()) >= 3 else None
    if re.match(rf"^(?:{_WH})\b", x, re.I):
        ask = direct_question(x)
        return Front(f"{topic} — {ask[:1].lower() + ask[1:]}", answer=answer,
                     source="feedback" if answer else None)
    return Front(f"{topic} — what about {x}?", answer=answer, source="feedback" if answer else None)


def unexplained(topic: str, wrote: str) -> Front | None:
    """The learner's "…, but I can't explain it" at the end of what they wrote: ask them to
    explain the sentence it closes ("With many features kNN gets worse …: why?")."""
    tail = wrote[-160:].lower()
    if not ph.has_any(tail, ph.UNEXPLAINED_WORDS):
        return None  # most fronts get here: spare them the sentence split
    near, _ = nearest(wrote)
    last = ph.sentences(near)[-1] if near else ""
    m = ph.UNEXPLAINED_RE.search(last)
    said = last[: m.start()].strip().rstrip(",;:") if m else ""
    if len(said.split()) < 4:
        return None
    return Front(f"{topic} — you wrote that {said[:1].lower() + said[1:]}: why?")


def claim(topic: str, feedback: str, answer: str, wrote: str) -> Front | None:
    """A contradiction: ask about the one sentence of the recall it contradicts."""
    if not (_CONTRA_RE.match(feedback) or _SAYS_WRONG_RE.search(feedback)):
        return None
    want = {w.lower() for w in _WORD_RE.findall(f"{feedback} {answer}")}
    best, score = "", 1
    for sent in ph.sentences(wrote):
        got = len(want & {w.lower() for w in _WORD_RE.findall(sent)})
        if got > score and len(sent.split()) <= 45:
            best, score = sent, got
    if not best:
        return None
    return Front(f"{topic} — you wrote: “{best}” What is wrong with it?")


def omissions(topic: str, mark: str, feedback: str,
              points: list[tuple[str, str]]) -> list[Front]:
    """The grader's "you left out X, Y and Z." with one `=>` line and one `>` quote per point:
    one front per point, asking for that point."""
    m = _LEFT_OUT_RE.match(feedback)
    if not m or not points:
        return []
    listed = [p.strip() for p in re.split(r",\s+|\s+and\s+", m.group("list")) if p.strip()]
    out = []
    for said, quote in points:
        point = next((p for p in listed if ph.normalise(said).startswith(ph.normalise(p))), None)
        if point is None:
            return []
        why = said.strip().rstrip(".")[len(point):].lstrip(" :—-").strip()
        plural = point.endswith("s") and not point.endswith("ss")
        answer = "\n\n".join(x for x in (cap(why) + "." if why else "", quote) if x) or None
        out.append(Front(f"{topic} — what {'are' if plural else 'is'} {point}?", answer=answer,
                         source="quote" if quote else "followup",
                         anchor=ph.normalise(f"{mark} you left out {point}")))
    return out


_WH_CLAUSE_RE = re.compile(rf"^(?:{_WH})\b.{{6,}}", re.I)


def forgotten(topic: str, own: str, match_end: int) -> str | None:
    """"I don't remember how beam search picks X" → "Topic — how does beam search pick X?"."""
    rest = own[match_end:].strip()
    m = _WH_CLAUSE_RE.match(rest)
    if not m:
        return None
    ask = direct_question(ph.sentences(rest)[0])
    return f"{topic} — {ask[:1].lower() + ask[1:]}"


def nearest(text: str, words: int = 40) -> tuple[str, str]:
    """The learner's sentences nearest the end of `text` (whole sentences, at most `words`
    words; one long sentence is cut to its last clauses) and the text before them.

    The text is taken with its whitespace made single spaces, so `ph.sentences` would split
    it at each space after `.`, `!` or `?` and nowhere else, into pieces that join back
    into it: the last sentences are found from the end, without splitting it all."""
    norm = " ".join(text.split())
    if not norm:
        return "", ""
    cut = _sentence_break(norm, len(norm))
    if cut < 0:
        last, earlier = norm, ""
    else:
        last, earlier = norm[cut + 1:], norm[:cut]
    if len(last.split()) > words:
        return (last_clause(last, words - 14) or "").strip(), earlier
    if cut < 0:
        return last.strip(), ""
    cut2 = _sentence_break(norm, cut)
    two = norm[cut2 + 1:]  # the sentence before the last, a space, and the last
    if len(two.split()) <= words:
        return two.strip(), norm[:cut2] if cut2 >= 0 else ""
    return last.strip(), earlier


def _sentence_break(norm: str, end: int) -> int:
    """The last space before `end` that follows `.`, `!` or `?` in `norm` (-1: none)."""
    at = max(norm.rfind(". ", 0, end), norm.rfind("! ", 0, end), norm.rfind("? ", 0, end))
    return at + 1 if at >= 0 else -1


# --- the wrong line ------------------------------------------------------------------------
#
# Feedback that names code (`x`, name(), .attr) makes a recalled code line "the wrong line"
# only when it says that code is wrong (docs/cards.md, "The wrong line"): the reference has
# a word character (never `=` or `&`), matches the line at word boundaries (never `x` in
# `max`), and its clause reads as a fault:
#   1. `not X`, `instead of X`, `rather than X`, `never X`, `no X`         → X is wrong;
#   2. `it is X`, `should be X`, `use X`, `the method is X`, `X is right` → X is the fix;
#   3. otherwise, in a clause with a fault word (wrong, error, raises, fails, not, n't,
#      never, typo, missing, …, or an `…Error`), the code it is said of: the reference
#      nearest before the fault word (else the first after it). Other code is only named.

_REF_SLOT_RE = re.compile("\x00(\\d+)\x00")
_CLAUSE_SPLIT_RE = re.compile(r"(?<=[.!?;:])\s+|\s+but\s+|,\s*(?:and|but|while|whereas)\s+", re.I)
_WRONG_BEFORE_RE = re.compile(r"(?:\bnot|\binstead\s+of|\brather\s+than|\bnever|\bno)\s*$", re.I)
_FIX_BEFORE_RE = re.compile(
    r"(?:\b(?:should|must|would|could)\s+(?:be|use|call|write)|\bit'?s|\bit\s+is|\bthat\s+is|"
    r"\bthe\s+(?:\w+\s+)?(?:method|function|call|name|fix|answer|one)\s+is|\buse|\bcall|"
    r"\bwrite|\btry|\bgood|\bcorrect(?:ly)?|\bright|\bnice|\bfine|\binstead\b,?|\bmeans?|"
    r"\bwant)\s*[:,]?\s*$", re.I)
_FIX_AFTER_RE = re.compile(
    r"^\W{0,3}\s*(?:(?:is|are|was|looks|seems)\s+)?(?:\w+\s+)?(?:correct|right|fine|good|ok|"
    r"okay|valid)\b|^\s*(?:works|is\s+what\s+you\s+want)\b", re.I)
_FAULT_RE = re.compile(
    r"\b(?:wrong|errors?|raises?|raised|throws?|fails?|failed|failing|crash(?:es|ed)?|not|"
    r"never|no|typo|bug|buggy|incorrect|mistaken?|missing|misspel\w*|broken|invalid|"
    r"undefined|nonexistent|shadows?)\b|n't\b|\b\w+(?:Error|Exception)\b", re.I)
_WORD_CHAR_RE = re.compile(r"\w")


def _named_wrong(texts: list[str]) -> list[str]:
    """The code references in `texts` that a clause calls wrong, in order."""
    out: list[str] = []
    for text in texts:
        found = list(ph.CODE_REF_RE.finditer(text))
        refs = [next(g for g in m.groups() if g) for m in found]
        masked, pos = [], 0
        for k, m in enumerate(found):
            masked.append(f"{text[pos:m.start()]}\x00{k}\x00")
            pos = m.end()
        masked.append(text[pos:])
        for clause in _CLAUSE_SPLIT_RE.split("".join(masked)):
            candidates: list[tuple[int, int, str]] = []  # (start, end, ref)
            for m in _REF_SLOT_RE.finditer(clause):
                ref = refs[int(m.group(1))]
                before = _REF_SLOT_RE.sub("code", clause[:m.start()])
                after = _REF_SLOT_RE.sub("code", clause[m.end():])
                if not _WORD_CHAR_RE.search(ref):
                    continue  # `=`, `&`, `->`: in every other line
                if _WRONG_BEFORE_RE.search(before):
                    out.append(ref)  # rule 1
                elif not (_FIX_BEFORE_RE.search(before) or _FIX_AFTER_RE.search(after)):
                    candidates.append((m.start(), m.end(), ref))
            fault = _FAULT_RE.search(clause)
            if fault and candidates:  # rule 3: the code the fault is said of, nearest to it
                subject = [c for c in candidates if c[1] <= fault.start()]
                out.append(subject[-1][2] if subject else candidates[0][2])
    return out


def _holds_code(line: str, ref: str) -> bool:
    """`ref` in `line`, not cut out of a longer name (`x` is not in `max`)."""
    start = line.find(ref)
    while start >= 0:
        end = start + len(ref)
        cut_before = start > 0 and _WORD_CHAR_RE.match(ref[0]) and _WORD_CHAR_RE.match(line[start - 1])
        cut_after = end < len(line) and _WORD_CHAR_RE.match(ref[-1]) and _WORD_CHAR_RE.match(line[end])
        if not cut_before and not cut_after:
            return True
        start = line.find(ref, start + 1)
    return False


def wrong_line(texts: list[str], code_lines: list[str]) -> str | None:
    """The recalled code line the feedback (and its corrections) says is wrong, or None."""
    for ref in _named_wrong(texts):
        for line in code_lines:
            if line.strip() and _holds_code(line, ref):
                return line.strip()
    return None
