"""Which of the model's proposed omissions are key: what a tutor would call left out.

A tutor's "you left out X" names something the book names (a heading, a **bold** term, an
API said with its idea) that the learner never mentioned. The model proposes more: details
of an idea the part does cover ("dropout converges more slowly", "same padding needs stride
1"), said in its own words. A proposal is *key* when its words name a term of the sources
that the recall never mentions, or when the sources name no terms at all (plain notes, where
nothing could be named). Only key points are marked (marks.sort_omissions); the others are
listed as "also in the source".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .coverage import concept_of, mentioned
from .model import KeyPoint, Omission
from .retrieve import content_tokens, same_word
from .sources import SourceSet


def term_text(point: KeyPoint) -> str:
    """A key term as words; an API name as the idea its words carry (`torch.inference_mode()`
    → "inference mode"), and "" when they carry none (`torch.long`)."""
    if point.origin != "code":
        return point.term
    idea = concept_of(point.term)
    return idea.split(" (`")[0] if idea else ""


def term_words(point: KeyPoint) -> list[str]:
    return [t for t in content_tokens(term_text(point)) if not {".", "_"} & set(t)]


def names(words: Sequence[str], text: str) -> bool:
    """Whether `text` says every one of `words`, in any order (a point is a few words:
    "sensitivity to axis orientation", "hardware-optimized matrix operations")."""
    tokens = content_tokens(text)
    return bool(words) and all(any(same_word(w, t) for t in tokens) for w in words)


def new_terms(sources: SourceSet, said: Sequence[str]) -> list[KeyPoint]:
    """The sources' key terms that the recall (its content tokens, `said`) never mentions."""
    return [k for k in sources.points
            if term_words(k) and not mentioned(term_text(k), said, sources.words)]


def mark_key(omissions: Sequence[Omission], sources: SourceSet,
             said: Sequence[str]) -> list[Omission]:
    """Each omission with `key` set: it names a source term the recall never mentions (set
    in `terms`), or the sources name no terms beyond their headings."""
    fresh = new_terms(sources, said)
    terms_named = any(k.origin != "heading" for k in sources.points)
    out = []
    for o in omissions:
        named = tuple(dict.fromkeys(k.term for k in fresh if names(term_words(k), o.point)))
        out.append(replace(o, key=not terms_named or bool(named), terms=named))
    return out
