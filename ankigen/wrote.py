""""What you wrote" on a card: the learner's own words near the gap that the front does not
already show, in whole sentences (docs/cards.md, rule 6).

A sentence the front shows (quoted on it, or the cloze made of it with the name blanked)
is left out here, never shown twice; what is left is trimmed from the start by whole
sentences to LIMIT characters, so it never starts mid-sentence. It is empty only when the
front shows all of it.
"""

from __future__ import annotations

import difflib
import re

from . import phrases as ph

LIMIT = 450  # characters of "what you wrote" kept, the last whole sentences
SHOWN = 0.75  # share of a sentence's words the front holds, in runs, for it to show it
_BREAK_RE = re.compile(r"(?<=[.!?])\s+|[ \t]*\n\s*")
_MORE = "… "  # in front of what is kept when earlier sentences were trimmed


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, split as ph.sentences splits it: after `.`,
    `!`, `?` and at a line break that is not a hard wrap; the whitespace between two
    sentences belongs to neither."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _BREAK_RE.finditer(text):
        if "\n" in m.group(0) and text[m.start() - 1:m.start()] not in (".", "!", "?"):
            line = text[text.rfind("\n", 0, m.start()) + 1:m.start()]
            if ph.wraps_into(line, text[m.end():m.end() + 1]):
                continue  # a hard wrap: the sentence goes on
        if m.start() > start:
            spans.append((start, m.start()))
        start = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def shows(front_words: list[str], sentence: str, have: frozenset[str] | None = None) -> bool:
    """The front holds at least SHOWN of the sentence's words, in runs of two or more (a
    sentence of one word: that word), in order: quoted, or the cloze made of it."""
    mine = ph.WORD_RE.findall(sentence.lower())  # ph.normalise(sentence).split(), in one call
    if not mine or len(mine) * SHOWN > len(front_words):
        return False  # matched words are front words: a sentence this long cannot be shown
    have = frozenset(front_words) if have is None else have
    if sum(map(have.__contains__, mine)) < SHOWN * len(mine):
        return False  # the cheap bound: most sentences share few words with the front
    if f" {' '.join(mine)} " in f" {' '.join(front_words)} ":
        return True  # quoted whole: the longest matching block is all of it
    blocks = difflib.SequenceMatcher(None, mine, front_words, autojunk=False).get_matching_blocks()
    least = min(2, len(mine))
    return sum(b.size for b in blocks if b.size >= least) >= SHOWN * len(mine)


def trim(text: str) -> str:
    """`text` cut to its last whole sentences within LIMIT characters, "… " in front when
    some were cut. One last sentence longer than that keeps its end, from a word."""
    text = text.strip()
    if len(text) <= LIMIT:
        return text
    for start, _ in sentence_spans(text):
        if len(text) - start <= LIMIT - len(_MORE):
            return _MORE + text[start:]
    cut = text[-(LIMIT - len(_MORE)):]
    return _MORE + cut[cut.find(" ") + 1:]  # from a word boundary (-1: none, all of it)


def what_you_wrote(front: str, text: str) -> str:
    """The learner's words `text` less the sentences `front` shows, trimmed by `trim`; what
    is kept is as written, its line breaks too."""
    text = text.strip()
    if not text:
        return ""
    words = ph.WORD_RE.findall(front.lower())  # ph.normalise(front).split(), in one call
    if not words:
        return trim(text)  # a front of no words shows no sentence
    have = frozenset(words)
    spans = sentence_spans(text)
    ends = [a for a, _ in spans[1:]] + [len(text)]  # each with the whitespace after it
    kept = [text[a:end] for (a, b), end in zip(spans, ends, strict=True)
            if not shows(words, text[a:b], have)]
    return trim("".join(kept))
