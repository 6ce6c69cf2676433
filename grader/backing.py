"""Offline 🟢: a part whose every statement one source passage backs, closely and specifically.

Offline cannot judge a statement, but it can check that one passage says the same thing in
much the same words: the passage, and the one sentence of it that states the claim, hold at
least half of the claim's content words, every
number the claim gives, every key term (bold or heading) the claim names, and is negated
alike, without giving one term what it says of another. So "Incremental PCA is the
stochastic one" is not backed by the passage on **Randomized PCA**, nor "you don't need to
center the data" by "center the data first", nor "max pooling outputs the mean" by "**Max
pooling** outputs the largest value …; **average pooling** outputs the mean".

A statement most of whose words the sources never use is one they are silent on (an
anecdote, a date): unverified, as with a model, and no obstacle to 🟢. A statement in the
sources' own vocabulary that no passage backs is: offline it cannot be told from a
contradiction ("attention already knows the word order"), so the part gets no 🟢.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .coverage import COVERED, PartEvidence, mentioned, sentences_of
from .marks import GREEN_SHARE
from .model import Claim, Passage
from .retrieve import content_tokens, overlap, share
from .sources import SourceSet

SILENT = 0.5  # below this share of its words in the sources, the sources are silent on a claim
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
_NEGATION_RE = re.compile(r"\b(?:not|no|never|cannot|nor|neither)\b|n't\b", re.I)
# Words that say which way something goes, each with its opposite: "a higher C means more
# regularization" against "higher values of C mean less regularization" is a flipped
# direction, as a flipped negation is.
_OPPOSITES = (("more", "less"), ("more", "fewer"), ("higher", "lower"), ("larger", "smaller"),
              ("bigger", "smaller"), ("increase", "decrease"), ("increases", "decreases"),
              ("raise", "lower"), ("up", "down"), ("above", "below"), ("before", "after"),
              ("faster", "slower"), ("first", "last"), ("maximum", "minimum"),
              ("max", "min"), ("inside", "outside"), ("with", "without"), ("positive", "negative"))


@dataclass(frozen=True)
class Backing:
    """Why offline may mark a part 🟢: each backed claim with its passage, and the claims
    the sources are silent on."""

    backed: tuple[tuple[Claim, Passage], ...]
    silent: tuple[Claim, ...]


def backs(claim: str, passage: Passage, terms: Sequence[str]) -> bool:
    """Whether `passage` states `claim` in much the same words: half of its content words,
    its numbers, the key terms it names, and the same polarity."""
    text = passage.text
    if overlap(claim, text) < COVERED:
        return False
    if set(_NUMBER_RE.findall(claim)) - set(_NUMBER_RE.findall(text)):
        return False
    # Polarity of the sentence that states it, not of the whole passage: "It has no weights
    # to learn" must not back "max pooling does not output the largest value".
    stating = max(sentences_of(passage), key=lambda s: overlap(claim, s))
    # One sentence states it: words gathered across a passage ("max pooling", "layer",
    # "window" from three sentences) would back "a max pooling layer learns its own weights"
    # beside "pooling layers have no trainable parameters".
    if overlap(claim, stating) < COVERED:
        return False
    if bool(_NEGATION_RE.search(claim)) != bool(_NEGATION_RE.search(stating)):
        return False
    if _flipped(claim, stating):
        return False
    said, stated = content_tokens(claim), content_tokens(text)
    named = [t for t in terms if mentioned(t, said)]
    if any(not mentioned(t, stated) for t in named):
        return False
    return not _swapped(said, stated, named)


def _flipped(claim: str, stating: str) -> bool:
    """Whether the claim says one way where the sentence stating it says the opposite (and
    not that way too): "more regularization" for "less regularization"."""
    mine = set(re.findall(r"[a-z]+", claim.lower()))
    theirs = set(re.findall(r"[a-z]+", stating.lower()))
    return any((a in mine and b in theirs and a not in theirs) or
               (b in mine and a in theirs and b not in theirs) for a, b in _OPPOSITES)


def _swapped(said: Sequence[str], stated: Sequence[str], terms: Sequence[str]) -> bool:
    """Whether the claim gives two terms what the passage says of each other: "max pooling
    outputs the mean, average pooling the largest value" against "**Max pooling** outputs the
    largest value …; **average pooling** outputs the mean". Each term written in both owns
    the words after it, up to the next term; a swap is a word the claim puts under A that the
    passage puts under B only, and one the claim puts under B that it puts under A only."""
    mine, theirs = _after_terms(said, terms), _after_terms(stated, terms)
    both = [t for t in mine if t in theirs]

    def moved(a: str, b: str) -> bool:
        return any(w in theirs[b] and w not in theirs[a] for w in mine[a])

    return any(moved(a, b) and moved(b, a) for a in both for b in both if a < b)


def _after_terms(tokens: Sequence[str], terms: Sequence[str]) -> dict[str, set[str]]:
    """Each term written as such in `tokens` (at its first place; a term inside another, like
    "Adam" in "AdamW", aside) → the words after it, up to the next term."""
    words = {t: [w for w in content_tokens(t) if not {".", "_"} & set(w)] for t in terms}
    words = {t: w for t, w in words.items() if w and not any(
        u != t and len(v) > len(w) and set(w) <= set(v) for u, v in words.items())}
    starts: list[tuple[int, str]] = []
    for term, want in words.items():
        at = next((i for i in range(len(tokens)) if tokens[i : i + len(want)] == want), None)
        if at is not None:
            starts.append((at, term))
    starts.sort()
    term_words = {w for want in words.values() for w in want}
    out: dict[str, set[str]] = {}
    for n, (at, term) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(tokens)
        out[term] = {w for w in tokens[at + len(words[term]) : end] if w not in term_words}
    return out


def offline_backing(evidence: Sequence[PartEvidence], sources: SourceSet) -> dict[int, Backing]:
    """Each part whose every claim is backed by one of its retrieved passages or is one the
    sources are silent on, with at least two claims, and two thirds of them, backed."""
    terms = sorted({k.term for k in sources.points if k.origin != "code"})
    out: dict[int, Backing] = {}
    for e in evidence:
        backed: list[tuple[Claim, Passage]] = []
        silent: list[Claim] = []
        for claim in e.claims:
            found = sorted((p for p, _ in e.top.get(claim.id, [])),
                           key=lambda p: -overlap(claim.text, p.text))
            passage = next((p for p in found if backs(claim.text, p, terms)), None)
            if passage is not None:
                backed.append((claim, passage))
            elif share(set(content_tokens(claim.text)), sources.words) < SILENT:
                silent.append(claim)
            else:
                break  # in the sources' words, yet no passage backs it: maybe wrong
        else:
            if len(backed) >= 2 and len(backed) >= GREEN_SHARE * len(e.claims):
                out[e.part] = Backing(tuple(backed), tuple(silent))
    return out
