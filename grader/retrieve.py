"""Retrieval: BM25 (bm25s) over the source passages, on stemmed content words.

Identifiers are kept whole and also split (`nn.Parameter` → `nn.parameter`, `nn`,
`parameter`), so a learner who writes "Parameter" finds the passage about `nn.Parameter`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet

import bm25s
import numpy as np

from .model import Passage

_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|\d+(?:\.\d+)?")
# Words that carry no subject in study notes, on top of bm25s's English list.
_NOTE_WORDS = frozenset(
    "also basically like just really thing things something stuff use used using uses "
    "way ways one two get gets got make makes made can could would should may might "
    "need needs want let lets know think said say says so ok okay yeah yes actually "
    "pretty bit lot lots kind sort".split()
)


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN) | _NOTE_WORDS


@functools.cache
def _stemmer() -> object | None:
    try:
        import Stemmer

        return Stemmer.Stemmer("english")
    except ImportError:  # PyStemmer is in the grader extra; without it, words stay whole
        return None


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    stemmer = _stemmer()
    return stemmer.stemWord(word) if stemmer is not None else word  # type: ignore[attr-defined]


# "K-Means++" is not "k-means", nor "C#" "C": the suffix is a word of its own.
_SUFFIX_RE = re.compile(r"(\w+)(\+\+|(?<=\b[A-Za-z])#)")


def content_tokens(text: str) -> list[str]:
    """Lowercased, stemmed content words; identifiers (`nn.Parameter`, `requires_grad`)
    whole and in pieces; a `++` or `#` suffix joined to its word, beside the word itself
    (`K-Means++` → `mean`, `meansplusplus`; `C#` → `csharp`), so `C++` and `K-Means++`
    share no word, as a lone `plusplus` made them do."""
    stop = _stopwords()
    out: list[str] = []
    if "+" in text or "#" in text:
        text = _SUFFIX_RE.sub(lambda m: f"{m.group(1)} {m.group(1)}"
                              + ("plusplus" if m.group(2) == "++" else "sharp"), text)
    for m in _WORD_RE.finditer(text):
        word = m.group(0).lower()
        split = re.split(r"[._]+", word)
        pieces = [word] if len(split) == 1 else [word, *split]
        for piece in pieces:
            piece = piece.strip("_")
            if len(piece) < 2 or piece in stop:
                continue
            out.append(piece if "." in piece or "_" in piece else _stem(piece))
    return out


class Index:
    """BM25 over passages; `scores` gives every passage's score for a text."""

    def __init__(self, passages: Sequence[Passage]):
        self.passages = list(passages)
        self.tokens = [content_tokens(f"{p.section} {p.text}") for p in self.passages]
        self._bm25 = bm25s.BM25()
        # bm25s refuses an empty vocabulary; a placeholder token keeps it indexable.
        self._bm25.index([t or ["\x00"] for t in self.tokens], show_progress=False)

    def scores(self, text: str) -> np.ndarray:
        query = [t for t in content_tokens(text) if t in self._bm25.vocab_dict]
        if not query:
            return np.zeros(len(self.passages))
        return np.asarray(self._bm25.get_scores(query))

    def top(self, text: str, k: int = 3) -> list[tuple[Passage, float]]:
        scores = self.scores(text)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.passages[i], float(scores[i])) for i in order if scores[i] > 0]


def same_word(a: str, b: str, words: AbstractSet[str] = frozenset()) -> bool:
    """Whether `a`, as written, says `b`: equal stems, or a short form of the other: `vgg` /
    `vggnet`, `conv` / `convolut` (the shorter at least 3 letters and half the longer, so
    `net` is not `network`). A shorter `a` is no short form of `b` when the sources use it
    as a word of its own (`words`, their `vocabulary`): notes that write `log` (log-odds,
    −log(p)) beside `logit` mean two things by them. A longer `a` still says `b`
    (`LayerNorm` says "layer")."""
    if a == b:
        return True
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return (len(short) >= 3 and 2 * len(short) >= len(long_) and long_.startswith(short)
            and not (short == a and a in words))


def vocabulary(passages: Sequence[Passage]) -> frozenset[str]:
    """Every content word the passages use, their section headings included."""
    return frozenset(t for p in passages for t in content_tokens(f"{p.section} {p.text}"))


def share(mine: set[str], theirs: AbstractSet[str]) -> float:
    """The share of the words in `mine` that `theirs` has, short forms counting."""
    if not mine:
        return 0.0
    hit = sum(1 for t in mine if t in theirs or any(same_word(t, u) for u in theirs))
    return hit / len(mine)


def overlap(claim: str, passage_text: str) -> float:
    """The share of a claim's content words that the passage also uses."""
    return share(set(content_tokens(claim)), set(content_tokens(passage_text)))


def coverage(claim: str, passages: Sequence[str]) -> float:
    """The share of a claim's content words that any of the passages uses."""
    theirs: set[str] = set()
    for text in passages:
        theirs.update(content_tokens(text))
    return share(set(content_tokens(claim)), theirs)
