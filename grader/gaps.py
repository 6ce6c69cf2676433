"""Which of the model's proposed omissions are key: what a tutor would call left out.

A tutor's "you left out X" names something the book names (a heading, a **bold** term, an
API said with its idea, an API call the notes write as code) that the learner never
mentioned. The model proposes more: details of an idea the part does cover ("dropout
converges more slowly", "same padding needs stride 1"), said in its own words. A proposal is
*key* when its words name a term of the sources that the recall never mentions, or when the
sources name no terms at all (plain notes, where nothing could be named). Only key points
are marked (marks.sort_omissions); the others are listed as "also in the source".

These checks read what the model answered; nothing here changes what it is asked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from .coverage import concept_of, mentioned
from .model import KeyPoint, Omission
from .retrieve import content_tokens, same_word
from .sources import SourceSet

# A one-letter prefix is part of its word: "Q-value iteration" is not "value iteration",
# "t-SNE" not "SNE". Tokens drop one-letter words, so the letter is joined to the word.
_LETTER_RE = re.compile(r"(?<![\w-])([A-Za-z])-(?=[A-Za-z]{2})")
# An API call the sources write as inline code, with or without its arguments:
# `fake.detach()`, `scaler.unscale_(optimizer)`, `torch.utils.checkpoint.checkpoint_sequential(
# model, segments, x)`.
_INLINE_RE = re.compile(r"`([^`\n]+)`")
_CALL_RE = re.compile(r"^\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*(\(.*\))?\s*$")


def lettered(text: str) -> str:
    """`text` with each one-letter prefix joined to its word ("Q-value" → "Qvalue")."""
    return _LETTER_RE.sub(r"\1", text)


def said_tokens(text: str) -> list[str]:
    """The content tokens of what the learner wrote, one-letter prefixes kept: the `said`
    that `mark_key` and the model's omission checks compare with (their terms go through
    `lettered` too)."""
    return content_tokens(lettered(text))


def term_text(point: KeyPoint) -> str:
    """A key term as words; an API name as the idea its words carry (`torch.inference_mode()`
    → "inference mode"), and "" when they carry none (`torch.long`)."""
    if point.origin != "code":
        return point.term
    idea = concept_of(point.term)
    return idea.split(" (`")[0] if idea else ""


def term_words(point: KeyPoint) -> list[str]:
    return [t for t in content_tokens(lettered(term_text(point))) if not {".", "_"} & set(t)]


def names(words: Sequence[str], text: str) -> bool:
    """Whether `text` says every one of `words`, in any order (a point is a few words:
    "sensitivity to axis orientation", "hardware-optimized matrix operations")."""
    tokens = content_tokens(lettered(text))
    return bool(words) and all(any(same_word(w, t) for t in tokens) for w in words)


def new_terms(sources: SourceSet, said: Sequence[str]) -> list[KeyPoint]:
    """The sources' key terms that the recall (`said_tokens` of it) never mentions."""
    return [k for k in sources.points
            if term_words(k) and not mentioned(lettered(term_text(k)), said, sources.words)]


def api_calls(sources: SourceSet) -> dict[str, KeyPoint]:
    """The API names the sources' prose writes as inline code, by their last name
    (`detach`, `unscale_`, `checkpoint_sequential`): a dotted name, a name with an
    underscore, or a call, whatever its arguments. A plain word in backticks (`segments`,
    `inf`) is a value, not an API."""
    found: dict[str, KeyPoint] = {}
    for k in sources.points:  # the code terms key points already hold keep their spelling
        m = _CALL_RE.match(k.term) if k.origin == "code" else None
        if m and ("." in m.group(1) or "_" in m.group(1) or m.group(2)):
            found.setdefault(m.group(1).split(".")[-1], k)
    for p in sources.passages:
        if p.kind == "code":
            continue
        for span in _INLINE_RE.findall(p.text):
            m = _CALL_RE.match(span)
            if not m:
                continue
            name = m.group(1)
            last = name.split(".")[-1]
            if len(last.strip("_")) < 3:
                continue  # `Q(s, a)`, `x.T`: notation, not an API
            if "." in name or "_" in last.strip("_") or last.endswith("_") or m.group(2):
                found.setdefault(last, KeyPoint(name, p.section, p.id, "code"))
    return found


def writes_api(text: str, last: str) -> bool:
    """Whether `text` writes an API's last name as code: `fake.detach()`, `.detach`,
    `unscale_`, `checkpoint_sequential` (an underscore is code), never the plain word
    ("detach the fakes" says the idea, not the call)."""
    for m in re.finditer(rf"(?<!\w){re.escape(last)}(?!\w)", text):
        before, after = text[: m.start()][-1:], text[m.end():][:1]
        if "_" in last or before in (".", "`") or after in ("(", "`"):
            return True
    return False


def _never_written(last: str, text: str) -> bool:
    """The recall never writes the API's last name, as code or as a word ("step() unscales
    the gradients" does not write `unscale_`)."""
    return re.search(rf"(?<!\w){re.escape(last)}(?!\w)", text, re.I) is None


def mark_key(omissions: Sequence[Omission], sources: SourceSet,
             text: str) -> list[Omission]:
    """Each omission with `key` set: it names a source term the recall (`text`, the
    learner's words) never mentions (set in `terms`), or the sources name no terms beyond
    their headings. A term is named by its words, or, for an API call the sources write as
    code, by writing the call as code: a tutor says "you left out `fake.detach()`" when the
    recall never writes it, whatever words describe the idea."""
    said = said_tokens(text)
    fresh = new_terms(sources, said)
    calls = {last: k for last, k in api_calls(sources).items() if _never_written(last, text)
             and not (term_words(k) and mentioned(lettered(term_text(k)), said,
                                                  sources.words))}
    terms_named = any(k.origin != "heading" for k in sources.points) or bool(calls)
    out = []
    for o in omissions:
        named = [k.term for k in fresh if names(term_words(k), o.point)]
        written = [k.term for last, k in calls.items() if writes_api(o.point, last)]
        named = list(dict.fromkeys(named + written))
        point = o.point
        if len(written) == 1 and written[0] not in point and "`" not in point:
            # the call as the notes write it, as a tutor names it: "unscale_ before gradient
            # clipping (`scaler.unscale_(optimizer)`)"
            point = f"{point} (`{written[0]}`)"
        out.append(replace(o, point=point, key=not terms_named or bool(named),
                           terms=tuple(named)))
    return out
