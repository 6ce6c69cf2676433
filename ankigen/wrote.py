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
# A sentence ends at whitespace after `.`, `!`, `?` (the match starts at that mark) or at a
# line break (sentence_spans takes the spaces and tabs before it too). Each branch is led by
# one character, so re skips to candidates instead of trying every space: 4x faster than
# r"(?<=[.!?])\s+|[ \t]*\n\s*", which splits the same.
_BREAK_RE = re.compile(r"[.!?]\s+|\n\s*")
_MORE = "… "  # in front of what is kept when earlier sentences were trimmed
# ASCII bytes to what ph.WORD_RE.findall(text.lower()) keeps of them: a word character
# lowercased, anything else a space. bytes.translate + split is ~4x faster than the regex, and
# "what you wrote" is worked out for every card (docs/performance.md, round 6).
_ASCII_WORDS = bytes(ord(chr(c).lower()) if ph.WORD_RE.fullmatch(chr(c)) else 32
                     for c in range(128)) + bytes(128)
# Punctuation fronts use that is not a word character: a space in its place splits the same.
_PUNCT = ("—", "–", "“", "”", "‘", "’", "…")


def words(text: str) -> list[str]:
    """The words of `text`, lowercased: ph.WORD_RE.findall(text.lower())."""
    if "Σ" in text:  # lowercased by what stands beside it: leave that as it is
        return ph.WORD_RE.findall(text.lower())
    for mark in _PUNCT:
        if mark in text:
            text = text.replace(mark, " ")
    if text.isascii():
        return text.encode().translate(_ASCII_WORDS).decode().split()
    return ph.WORD_RE.findall(text.lower())


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, split as ph.sentences splits it: after `.`,
    `!`, `?` and at a line break that is not a hard wrap; the whitespace between two
    sentences belongs to neither."""
    spans: list[tuple[int, int]] = []
    start = end = 0  # where the sentence starts; where the last break ended
    for m in _BREAK_RE.finditer(text):
        at = m.start()
        if text[at] in ".!?":
            at += 1  # the break is the whitespace after the sentence's end
        else:  # a line break, with the spaces and tabs before it
            while at > end and text[at - 1] in " \t":
                at -= 1
            line = text[text.rfind("\n", 0, at) + 1:at]
            if ph.wraps_into(line, text[m.end():m.end() + 1]):
                end = m.end()
                continue  # a hard wrap: the sentence goes on
        if at > start:
            spans.append((start, at))
        start = end = m.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def shows(front_words: list[str], sentence: str, have: frozenset[str] | None = None) -> bool:
    """The front holds at least SHOWN of the sentence's words, in runs of two or more (a
    sentence of one word: that word), in order: quoted, or the cloze made of it."""
    mine = words(sentence)
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
    spans = sentence_spans(text)
    if _quotes(front, text) and all(map(_has_word, (text[a:b] for a, b in spans))):
        return ""  # the front quotes it all: each sentence shows, as `shows` would find
    front_words = words(front)
    if not front_words:
        return trim(text)  # a front of no words shows no sentence
    have = frozenset(front_words)
    ends = [a for a, _ in spans[1:]] + [len(text)]  # each with the whitespace after it
    kept = [text[a:end] for (a, b), end in zip(spans, ends, strict=True)
            if not shows(front_words, text[a:b], have)]
    return trim("".join(kept))


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"  # re's \w on one character


def _has_word(sentence: str) -> bool:
    return ph.WORD_RE.search(sentence) is not None


def _quotes(front: str, text: str) -> bool:
    """`text` stands in `front` between two non-word characters (or its ends), so the words
    of each of its sentences are a run of the front's words: quoted whole. Lowercasing
    commutes with cutting a piece out, except at a capital sigma (final form by context)."""
    at = front.find(text)
    if at < 0 or "Σ" in front:
        return False
    before, after = front[at - 1:at], front[at + len(text):at + len(text) + 1]
    return not any(map(_is_word, f"{before}{after}".lower()))
