"""Fit a card's answer side to one phone screen: 640 px tall at 360 px wide.

Cards are reviewed on phones. An answer side taller than a screen makes the learner scroll
past the answer to find the check's verdict, so, without JavaScript (clients run it
differently), the card's HTML is laid out at build time from an estimate of its height:

1. "What you wrote" is dropped when it repeats the front (the front already shows it).
2. If the whole answer side would be taller than `BUDGET`, the check's code folds behind a
   `<details>` (its verdict and output stay visible: they are what the check is for).
3. If it is still too tall, the answer is cut at the last sentence end that fits, and the
   rest of it goes into a `<details>` one tap away. Lists, code, tables and headings are
   never cut inside; at least the answer's first sentence stays visible.

The estimate is deliberately generous (wider glyphs than real fonts have);
tests/test_mobile.py measures the real cards in Chromium at 360 px.
"""

from __future__ import annotations

import functools
import html
import math
import re

BUDGET = 640  # px of answer side visible at once on a 360 px wide phone
WIDTH = 348  # the card's width at 360 px less its padding
BODY_PX = 18.0  # .card font-size; line-height 1.45 everywhere
LINE_HEIGHT = 1.45
PROSE_EM = 0.56  # average advance of a proportional glyph, generous (real fonts: ~0.5)
MONO_EM = 0.62  # monospace advance, generous (0.6)
CODE_PX = BODY_PX * 0.82
HR = 20  # the <hr id="answer"> with its margins
SUMMARY = 40  # one closed <details> with its summary line and margin
CHECK_CODE_OPEN = '<details class="check-code" open>'
MORE = '<details class="more"><summary>The rest of the answer</summary>'

_BLOCK_RE = re.compile(
    r"<(p|ul|ol|blockquote|pre|div|table|h[1-6])\b[^>]*>.*?</\1>|<hr[^>]*>", re.S)
_TAG_RE = re.compile(r"<[^>]+>")
_BREAK_RE = re.compile(r"<br\s*/?>|</(?:p|li|div|h[1-6]|tr|blockquote|summary)>")
# A sentence ends at . ! ? (or …) before a space and a capital, digit, quote or code.
_SENTENCE_END_RE = re.compile(r"(?<=[.!?…])[\"”')]?(?= +[A-Z0-9\"“'`(<])")
_WORD_RE = re.compile(r"\w+")
_PRE_RE = re.compile(r"<pre\b[^>]*>.*?</pre>", re.S)
_NEWLINES_RE = re.compile(r"\n+")


def _text(fragment: str) -> str:
    text = _TAG_RE.sub("", fragment)
    return html.unescape(text) if "&" in text else text


def _lines(text: str, px: float, em: float) -> int:
    per_line = max(1, int(WIDTH / (px * em)))
    return sum(max(1, math.ceil(len(line) / per_line)) for line in text.split("\n"))


def _prose_height(fragment: str, px: float = BODY_PX) -> float:
    """Height of inline/block HTML that is not code: each line break or block end starts a
    line; a paragraph adds one blank line of margin."""
    text = _text(_BREAK_RE.sub("\n", fragment)).strip("\n")
    if not text.strip():
        return 0.0
    paragraphs = fragment.count("<p") + fragment.count("<li") // 2
    return _lines(_NEWLINES_RE.sub("\n", text), px, PROSE_EM) * px * LINE_HEIGHT + paragraphs * px


def _code_height(fragment: str, px: float = CODE_PX) -> float:
    text = _text(_BREAK_RE.sub("\n", fragment)).strip("\n")
    per_line = max(1, int((WIDTH - px) / (px * MONO_EM)))  # less the <pre>'s padding
    rows = sum(max(1, math.ceil(len(line) / per_line)) for line in text.split("\n"))
    return rows * px * LINE_HEIGHT + px * 2  # padding and margin


def _upper(fragment: str, px: float = BODY_PX) -> float:
    """A bound no lower than `height`, from lengths and counts alone: every character (tags
    too) at the narrowest line (monospace at this size, less a padding), every tag or
    newline a line break, every paragraph, list item and code block its margin."""
    if not fragment:
        return 0.0
    pre = fragment.count("<pre")
    if pre:
        px = max(px, CODE_PX)  # code is set at CODE_PX whatever the text around it
    per_line = _PER_LINE.get(px) or _per_line(px)
    tags = fragment.count("<")
    breaks = tags + fragment.count("\n")
    margins = fragment.count("<p") + fragment.count("<li") + 2 * pre if tags else 0
    return (len(fragment) / per_line + breaks + 1) * px * LINE_HEIGHT + margins * px


def _per_line(px: float) -> int:
    """Monospace characters in a line at `px`, less a padding (the narrowest line)."""
    return max(1, int((WIDTH - px) / (px * MONO_EM)))


_PER_LINE = {px: _per_line(px) for px in (BODY_PX, BODY_PX * 0.72, BODY_PX * 0.8, CODE_PX)}


@functools.lru_cache(maxsize=256)
def _source_upper(source: str) -> float:
    """`_upper` of a card's source line: the same string for every card of a part."""
    return _upper(source, BODY_PX * 0.72)


def height(fragment: str, px: float = BODY_PX) -> float:
    """Estimated height in px of card HTML at 360 px wide (generous)."""
    total = 0.0
    pos = 0
    if "<pre" not in fragment:
        return _prose_height(fragment, px)
    for m in _PRE_RE.finditer(fragment):
        total += _prose_height(fragment[pos:m.start()], px) + _code_height(m.group())
        pos = m.end()
    return total + _prose_height(fragment[pos:], px)


def _blocks(fragment: str) -> list[str]:
    """Top-level blocks of rendered markdown (text between them is kept as its own block)."""
    out, pos = [], 0
    for m in _BLOCK_RE.finditer(fragment):
        if fragment[pos:m.start()].strip():
            out.append(fragment[pos:m.start()])
        out.append(m.group())
        pos = m.end()
    if fragment[pos:].strip():
        out.append(fragment[pos:])
    return out


def _sentence_cuts(inner: str) -> list[int]:
    """Offsets in `inner` (a paragraph's HTML) where a sentence ends outside any tag."""
    cuts: list[int] = []
    depth = pos = 0
    for m in re.finditer(r"<(/?)[a-zA-Z][^>]*>|[^<]+", inner):
        piece = m.group()
        if piece.startswith("<"):
            if not piece.endswith("/>") and not piece.startswith("<br"):
                depth += -1 if m.group(1) else 1
        elif depth == 0:
            cuts.extend(pos + c.end() for c in _SENTENCE_END_RE.finditer(piece))
        pos = m.end()
    return cuts


def _split_block(block: str, room: float, px: float, keep_one: bool
                 ) -> tuple[str, str] | None:
    """A paragraph (or a quote of paragraphs) cut at the last sentence end that fits in
    `room` (with `keep_one`, at the first sentence end when none fits); None when the block
    cannot be cut there (lists, code, a single sentence)."""
    block = block.strip()
    quote = re.fullmatch(r"<blockquote>\s*(.*?)\s*</blockquote>", block, re.S)
    if quote:
        head, tail = _fit_blocks(_blocks(quote.group(1)), room, px, keep_one)
        if not head or not tail:
            return None
        return (f"<blockquote>\n{''.join(head)}\n</blockquote>",
                f"<blockquote>\n{''.join(tail)}\n</blockquote>")
    para = re.fullmatch(r"<p>(.*)</p>", block, re.S)
    if not para:
        return None
    inner = para.group(1)
    cuts = _sentence_cuts(inner)
    best = cuts[0] if cuts and keep_one else None
    for cut in cuts:
        if _prose_height(f"<p>{inner[:cut]}</p>", px) > room:
            break
        best = cut
    if best is None:
        return None
    return f"<p>{inner[:best]}</p>", f"<p>{inner[best:].lstrip()}</p>"


def _fit_blocks(blocks: list[str], room: float, px: float, keep_one: bool = True
                ) -> tuple[list[str], list[str]]:
    """Blocks that fit in `room` and the rest; with `keep_one`, at least the first sentence
    (or the first block, when it cannot be cut) stays."""
    used = 0.0
    for i, block in enumerate(blocks):
        h = height(block, px)
        if used + h <= room:
            used += h
            continue
        split = _split_block(block, room - used, px, keep_one and i == 0)
        if split:
            return [*blocks[:i], split[0]], [split[1], *blocks[i + 1:]]
        if i == 0 and keep_one:
            return blocks[:1], blocks[1:]
        return blocks[:i], blocks[i:]
    return blocks, []


def _words(fragment: str) -> list[str]:
    return _WORD_RE.findall(_text(fragment).lower())


REPEAT_RUN = 12  # words in a row that the front and "what you wrote" may not share


_WORD_CHAR_RE = re.compile(r"\w")


def _holds_run(text: str, part: str) -> bool:
    """Whether `part` (with a word) is in `text` with no word cut at either end: then the
    words of `part` are a run of the words of `text`, all of them."""
    at = text.find(part)
    if at < 0 or not _WORD_CHAR_RE.search(part):
        return False
    end = at + len(part)
    for cut in (at, end):  # a word of `text` runs across the cut: not the same words
        if 0 < cut < len(text) and _WORD_CHAR_RE.match(text, cut - 1) and _WORD_CHAR_RE.match(text, cut):
            return False
    return True


def repeats(wrote: str, front: str) -> bool:
    """Whether "what you wrote" repeats the front: a run of `REPEAT_RUN` words (or half of
    what it says) that the front holds too."""
    text_f, text_w = _text(front).lower(), _text(wrote).lower()
    if _holds_run(text_f, text_w):
        return True  # the front holds all of it, word for word (the run is all of `wrote`)
    f = _WORD_RE.findall(text_f)
    if not f:
        return False
    if len(f) < REPEAT_RUN:  # the run is at most len(f) words: it must be half of `wrote`
        most = 2 * len(f)
        end = 10 * (most + 1)  # words of a prefix are no more than the whole text's
        w = _WORD_RE.findall(text_w, 0, end)
        if len(w) > most:
            return False  # more than twice as many words as the front: no need to list them
        if len(text_w) > end:
            w = _WORD_RE.findall(text_w)
    else:
        w = _WORD_RE.findall(text_w)
    if not w:
        return False
    if f" {' '.join(w)} " in f" {' '.join(f)} ":
        return True  # the same, when the front's text differs between the words
    known = set(f)
    if sum(a in known for a in w) < min(REPEAT_RUN, (len(w) + 1) // 2):
        return False  # too few shared words for the run it takes
    if len(w) >= 2 * REPEAT_RUN:  # only a run of REPEAT_RUN can repeat it: compare n-grams
        runs = {tuple(f[i:i + REPEAT_RUN]) for i in range(len(f) - REPEAT_RUN + 1)}
        return any(tuple(w[i:i + REPEAT_RUN]) in runs for i in range(len(w) - REPEAT_RUN + 1))
    longest, prev = 0, [0] * (len(f) + 1)
    for a in w:  # longest common run of words (dynamic programming, rows of the front)
        row = [0] * (len(f) + 1)
        for j, b in enumerate(f, 1):
            if a == b:
                row[j] = prev[j - 1] + 1
                longest = max(longest, row[j])
        prev = row
    return longest >= REPEAT_RUN or longest * 2 >= len(w)


def fit(front: str, back: str, wrote: str, source: str, check: str
        ) -> tuple[str, str, str]:
    """(back, wrote, check) laid out so the answer side fits `BUDGET` where it can."""
    if wrote and repeats(wrote, front):
        wrote = ""
    extra = HR + (SUMMARY if wrote else 0) + BODY_PX
    if (_upper(front) + _source_upper(source) + extra + _upper(back)
            + (_upper(check, BODY_PX * 0.8) + BODY_PX if check else 0)) <= BUDGET:
        return back, wrote, check  # fits even by the generous bound: no estimate needed
    fixed = height(front) + height(source, BODY_PX * 0.72) + extra
    if fixed + height(back) + _check_height(check, folded=False) <= BUDGET:
        return back, wrote, check
    if CHECK_CODE_OPEN in check:
        check = check.replace(CHECK_CODE_OPEN, CHECK_CODE_OPEN.replace(" open", ""))
    room = BUDGET - fixed - _check_height(check, folded=True) - SUMMARY
    blocks = _blocks(back)
    if not blocks or height(back) <= room + SUMMARY:
        return back, wrote, check
    head, tail = _fit_blocks(blocks, room, BODY_PX)
    if not tail:
        return back, wrote, check
    return "".join(head) + MORE + "".join(tail) + "</details>", wrote, check


def _check_height(check: str, folded: bool) -> float:
    if not check:
        return 0.0
    if folded:
        check = re.sub(r'<details class="check-code">.*?</details>', "", check, flags=re.S)
        return height(check, BODY_PX * 0.8) + SUMMARY + BODY_PX
    return height(check, BODY_PX * 0.8) + BODY_PX
