"""Regexes over one line or sentence of text: the cues a careful reader of notes uses.

Every pattern here is applied to a single line or paragraph, never to a whole file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

ARROW = "=>"

# "chapter 12 is about X", "So, optimizers.", "Now let's talk higher level pytorch."
CHAPTER_RE = re.compile(r"\bchapters?\s+(\d+)", re.I)
CHAPTER_FIX_RE = re.compile(
    r"\b(?:actually|oops|wait|correction)\b[^.]*?\bchapter\s+(\d+)", re.I
)
TOPIC_PATTERNS = (  # in order of trust, each tried on single sentences
    re.compile(r"\bchapter\s+\d+\s+(?:is|was)\s+(?:all\s+)?(?:about|on)\s+(?P<t>[^.!?\n]+)", re.I),
    re.compile(r"^\s*(?:so|ok|okay|now|next|right)\s*,\s*(?!\s*(?:now|i|i'll|i'm|let'?s|let|we|this|that|it|well)\b)(?P<t>[^.!?\n,]{3,60})[.!:]?\s*$", re.I),
    re.compile(r"\b(?:let'?s|now let'?s|let us)\s+talk\s+(?:about\s+)?(?P<t>[^.!?\n]+)", re.I),
    re.compile(r"(?<!n't )(?<!not )\b(?:re-?explain|recall|integrate)\s+(?P<t>[^.!?\n()]{3,})", re.I),
    re.compile(r"\b(?:we\s+stopped\s+(?:on|at)|continuing\s+with|moving\s+on\s+to)\s+(?P<t>[^.!?\n]{3,})", re.I),
)

# Feedback that names what was missed: "talk about X", "you skipped X".
NAMED_MISS_RE = re.compile(
    r"\b(?:talk about|tell me about|explain|mention|cover|describe|you (?:forgot|skipped|missed|left out|didn'?t mention|"
    r"did not mention|omitted)|(?:but )?(?:missing|forgot|skipped|omitted)|what about|"
    r"(?:poor|weak|vague|little|no|thin)\s+recall\s+(?:on|of|about))\s+"
    r"(?P<x>(?:[^.;!?\n]|\.(?=\w))+)",  # a dot inside `torch.no_grad()` does not end it
    re.I,
)
GO_ON_RE = re.compile(r"\b(?:talk about|tell me about|go on (?:to|with)|now explain|explain|cover|describe)\b", re.I)

ACK_RE = re.compile(
    r"^\W*(?:good|great|nice|correct|right|yes|yep|exactly|well done|perfect|ok|okay|"
    r"that'?s it|spot on|indeed|true|awesome)\b[\w\s']{0,20}[.!]*\W*$",
    re.I,
)
LEAD_IN_RE = re.compile(
    r"^\s*(?:the\s+(?:name|class|function|method|term|answer|formula|word)\s+is|"
    r"it'?s\s+called|it\s+is\s+called|called|it'?s|it\s+is|answer\s*:)\s*",
    re.I,
)

# "I forgot", "I can't recall", "I don't remember" …: one list for every forgetting cue.
_FORGET = (r"(?:forgot|forget|can'?t\s+recall|cannot\s+recall|can'?t\s+remember|"
           r"cannot\s+remember|don'?t\s+remember|do\s+not\s+remember|don'?t\s+recall)")
FORGOT_NAME_RE = re.compile(rf"\bI\s+{_FORGET}\s+(?:the\s+)?name\b", re.I)
FORGOT_RE = re.compile(
    rf"\b(?:I\s+(?:{_FORGET}|have\s+no\s+idea|am\s+not\s+sure)|I'm\s+not\s+sure|"
    r"(?:forgot|can'?t recall)\s+the\s+rest)\b",
    re.I,
)
LOOKED_UP_RE = re.compile(r"\(\s*(?:I\s+)?looked\s+(?:it\s+)?up(?:\s+the\s+name)?[^)]*\)", re.I)
LOOKED_UP_TERM_RE = re.compile(
    r"(?:called|named|is|was|use|uses|using)\s+[`*_]*(?P<term>[A-Za-z_][\w.]*(?:\(\))?)[`*_]*"
    r"\s*[.,;:!]?\s*$",
    re.I,
)
SELF_QUESTION_RE = re.compile(
    r"(?:^|(?<=[.!?]\s))(?P<q>(?:what'?s|what\s+is|what\s+was|what\s+were|which\s+(?:is|was)|"
    r"what\s+are)\s+the\s+(?:other|second|third|next|last|remaining|rest|missing)\b[^?]*\?|"
    r"what\s+else\b[^?.]*\?)",
    re.I,
)
FORGETFUL_PAREN_RE = re.compile(
    r"\((?P<p>[^)]*(?:forgot|forget|can'?t\s+recall|don'?t\s+remember|what\s+else|"
    r"the\s+rest|second\s+one|other\s+one)[^)]*)\)",
    re.I,
)
QUESTION_VOICE_RE = re.compile(
    r"\b(?:one\s+question|my\s+question|I\s+(?:wonder|don'?t\s+(?:get|understand))|"
    r"question\s+I\s+have|how\s+(?:does|do|is|come)|why\s+(?:does|do|is)|what\s+(?:is|does))\b",
    re.I,
)
# A grader's note under a part ("=> unverified: …", "=> also in the source (not marked): …"):
# neither an answer nor a gap.
ANNOTATION_RE = re.compile(
    r"^\s*=>\s*(?:unverified\b|doubtful \(not in your sources\)|also in the source \(not marked\))",
    re.I)
# Words the forgetting cues above cannot match without: checking for them first (plain
# substring tests on the lowercased line) spares most lines the slower regexes.
FORGET_WORDS = ("forg", "recall", "remember", "idea", "sure")
CUE_WORDS = (*FORGET_WORDS, "looked")
SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n+")
TUTOR_CHAPTER_RE = re.compile(r"\b(?:recall|explanation|summary|coverage)\s+of\s+chapter\s+(\d+)", re.I)
CODE_REF_RE = re.compile(r"`([^`]+)`|([A-Za-z_][\w.]*\(\))|(\.[A-Za-z_]\w*)")
WORD_RE = re.compile(r"\w+")  # the words `normalise` keeps (wrote.py splits by it too)


def split_arrows(text: str) -> list[str]:
    """`a => b => c` → ['a', 'b', 'c'] (stripped)."""
    return [seg.strip() for seg in text.split(ARROW)]


def is_annotation(line: str) -> bool:
    return bool(ANNOTATION_RE.match(line))


# A tutor's remark that sends the learner elsewhere and states nothing itself: no answer.
# Its pointer ("this needs a real explanation", "come back to it", "see chapter 3") …
_DEFERRAL_RE = re.compile(
    r"^\s*(?:this\s+|it\s+)?(?:needs?\s+(?:a\s+)?(?:real|proper|better|full)\s+explanation"
    r"|come\s+back\s+to\s+(?:it|this)|look\s+(?:it|this)\s+up|re-?read|revisit"
    r"|see\s+(?:the\s+)?(?:book|chapter|section))\b", re.I)
# … and the words it may go on with ("… come back to it after section 5.4", "see chapter 3
# again"); any other word says something, and the remark answers ("look it up, it's the
# Adam optimizer", "revisit this, the gradient flows backwards").
_POINTER_WORDS = frozenset("""and then come back to it this that after before in at from later
again the a book chapter chapters section sections page pages once you have read reread
re-read first next lecture notes video part""".split())


def is_deferral(segment: str) -> bool:
    """"this needs a real explanation; come back to it after section 5.4": no answer."""
    m = _DEFERRAL_RE.match(segment)
    if m is None:
        return False
    rest = re.findall(r"[A-Za-z][\w'-]*", segment[m.end():].lower())
    return all(w in _POINTER_WORDS for w in rest)


# A learner's "…, but I can't explain it / why": the sentence before it is what to explain.
UNEXPLAINED_RE = re.compile(
    r",?\s*(?:but|and)\s+I\s+(?:can'?t|cannot|couldn'?t|don'?t\s+know\s+how\s+to)\s+explain"
    r"\s+(?:it|this|that|why)\s*[.!]?\s*$|,?\s*(?:but|and)\s+I\s+don'?t\s+know\s+why\s*[.!]?\s*$",
    re.I)
# What UNEXPLAINED_RE cannot match without (substring tests are cheaper than its search).
UNEXPLAINED_WORDS = ("explain it", "explain this", "explain that", "explain why", "know why")


def is_ack(segment: str) -> bool:
    """An acknowledgment such as 'Good name!' that answers nothing."""
    return bool(ACK_RE.match(segment)) and len(segment.split()) <= 5


def strip_lead_in(segment: str) -> str:
    return LEAD_IN_RE.sub("", segment, count=1).strip().rstrip(".").strip()


# A line break is a hard wrap, not a sentence end, when the line before was filled (an
# editor wrapping at 70-90 columns leaves lines this long) and ends mid-sentence (a colon
# only before a lowercase word), and the next line starts no bullet, heading, quote, table
# row, fence, `=>` or mark. ("1) = 80" after "8 * (1 * 3 * 3 +" is a wrap: a numbered list
# does not follow a cut-off sentence.)
HARD_WRAP_MIN = 40
_WRAP_RE = re.compile(r"[ \t]*\n[ \t]*(?![-*+]\s|[#>|`=\n🟢🟡🔴])(?=\S)")


def wraps_into(line: str, after: str) -> bool:
    """Whether `after` goes on with the sentence `line` was cut off in (a hard wrap)."""
    s = line.strip()
    if len(s) < HARD_WRAP_MIN or s.endswith((".", "!", "?")):
        return False
    return not s.endswith(":") or after.lstrip()[:1].islower()


def unwrap(text: str) -> str:
    """`text` with its hard wraps made single spaces: the same sentences as unwrapped."""
    if "\n" not in text:
        return text

    def join(m: re.Match[str]) -> str:
        start = text.rfind("\n", 0, m.start()) + 1
        return " " if wraps_into(text[start : m.start()], text[m.end() : m.end() + 1]) \
            else m.group(0)

    return _WRAP_RE.sub(join, text)


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_SPLIT_RE.split(unwrap(text)) if s and s.strip()]


def first_sentence(text: str) -> str:
    """`(sentences(text) or [""])[0]`, without splitting all of `text`."""
    head = SENTENCE_SPLIT_RE.split(unwrap(text), maxsplit=1)[0].strip()
    return head if head else (sentences(text) or [""])[0]


def last_sentences(text: str, n: int, limit: int = 400) -> str:
    """The learner's n sentences nearest the end of text, at most `limit` characters."""
    chosen = sentences(" ".join(text.split()))[-n:]
    out = " ".join(chosen)
    if len(out) > limit:
        out = "…" + out[-limit:].lstrip()
    return out


def normalise(text: str) -> str:
    """Lowercase words only: the anchor a gap's identity is derived from. (The words are
    the runs of \\w: what splitting on the runs of anything else gave, found directly.)"""
    return " ".join(WORD_RE.findall(text.lower()))


_TOPIC_CUT_RE = re.compile(r"\s+(?:to|which|that|using|because|so|where|when|since)\s+", re.I)
_VAGUE = frozenset("again it this that more further some stuff things a bit now here".split())


def has_any(low: str, words: tuple[str, ...]) -> bool:
    """Any of the (lowercase) words in already-lowercased text."""
    return any(w in low for w in words)


# TOPIC_PATTERNS[i] cannot match a text without one of TOPIC_WORDS[i].
TOPIC_WORDS: tuple[tuple[str, ...], ...] = (
    ("chapter",), ("",), ("talk",), ("explain", "recall", "integrate"),
    ("stopped", "continuing", "moving"),
)


_BEFORE_MARK_RE = re.compile(r"[🟢🟡🔴(]")
_TOPIC_LEAD_RE = re.compile(r"^(?:about|on|the)\s+", re.I)
_MISS_LEAD_RE = re.compile(r"^(?:about|the)\s+", re.I)


def topic_from(text: str) -> str | None:
    lines = text.split("\n")
    cut: list[list[str]] = []  # each line's sentences before any mark, split when first read

    def opening() -> Iterator[str]:
        for k, line in enumerate(lines):
            if k == len(cut):  # the announcing sentence is mostly the first: split no further
                cut.append(sentences(_BEFORE_MARK_RE.split(line, maxsplit=1)[0]))
            yield from cut[k]

    low = text.lower()
    for pat, hints in zip(TOPIC_PATTERNS, TOPIC_WORDS, strict=True):
        if not has_any(low, hints):
            continue
        for sent in opening():
            m = pat.search(sent)
            if m:
                topic = m.group("t").strip(" ,;:-")
                topic = _TOPIC_LEAD_RE.sub("", topic)
                topic = _TOPIC_CUT_RE.split(topic, maxsplit=1)[0]
                words = topic.split()[:8]
                topic = " ".join(words)
                if words and not set(w.lower() for w in words) <= _VAGUE:
                    return topic[:1].upper() + topic[1:]
    # A part that opens with its topic alone: "Regularization. Dropout switches off …"
    first = next(opening(), "")
    m = _BARE_TOPIC_RE.match(first)
    if m and len(text.split()) > 4 and m.group("t").lower() not in _NOT_TOPIC:
        return m.group("t")
    return None


_BARE_TOPIC_RE = re.compile(r"^(?P<t>[A-Z][\w-]+(?:\s+[a-zA-Z][\w-]*){0,2})[.:]$")
_NOT_TOPIC = frozenset("so ok okay well right now next hmm yes no alright done".split())


def named_miss(feedback: str) -> str | None:
    m = NAMED_MISS_RE.search(feedback)
    if not m:
        return None
    x = m.group("x").strip(" ,:-")
    x = _MISS_LEAD_RE.sub("", x)
    return x if 0 < len(x.split()) <= 8 else None
