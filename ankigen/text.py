"""Bytes in, repaired text out.

Notes travel between apps and arrive with their emoji decoded by the wrong codec
(`ðŸŸ¡`, `游리`), with BOMs, CRLF, or not as UTF-8 at all. Repair never adds or
removes a line, so line numbers still point into the file on disk.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .model import Mark

MARK_EMOJI: dict[Mark, str] = {Mark.GREEN: "🟢", Mark.YELLOW: "🟡", Mark.RED: "🔴"}
EMOJI_MARK: dict[str, Mark] = {v: k for k, v in MARK_EMOJI.items()}

# Codecs a UTF-8 emoji is commonly misread with: Western single-byte and the
# East-Asian multi-byte families (Korean, Japanese, Chinese).
WRONG_CODECS: tuple[str, ...] = (
    "cp1252", "latin-1", "cp437", "mac_roman", "cp1251", "iso8859_15",
    "johab", "euc_kr", "cp949", "shift_jis", "cp932", "euc_jp",
    "gbk", "gb18030", "gb2312", "big5", "cp950", "big5hkscs",
)
FALLBACK_CODEC = "cp1252"
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".txt"})


@dataclass(frozen=True)
class ReadResult:
    text: str
    encoding: str
    repairs: tuple[str, ...]
    warnings: tuple[str, ...]


@functools.cache
def mark_forms() -> dict[str, Mark]:
    """Every way each mark's UTF-8 bytes read under a wrong codec, derived, not listed.

    A form keeps at least two characters so it cannot be an ordinary letter. Both a
    strict decode and one that drops undecodable bytes are kept, because copy-paste
    loses the bytes a codec cannot show (cp1252 has holes at 0x81, 0x8D, 0x8F...).
    """
    seen: dict[str, set[Mark]] = {}
    for mark, emoji in MARK_EMOJI.items():
        raw = emoji.encode("utf-8")
        for codec in WRONG_CODECS:
            for errors in ("strict", "ignore"):
                try:
                    form = raw.decode(codec, errors=errors)
                except (UnicodeDecodeError, LookupError):
                    continue
                if len(form) >= 2 and form != emoji and not form.isascii():
                    seen.setdefault(form, set()).add(mark)
    # A form two marks share (bytes that told them apart were dropped) names neither.
    return {form: marks.pop() for form, marks in seen.items() if len(marks) == 1}


# `mark_forms()` as it is, written out (tests/test_text.py holds them equal, order and
# all): deriving it decodes the emoji under 18 codecs, importing most of them, ~3 ms that
# each parse worker of a build paid again after the fork.
_MARK_FORMS: dict[str, Mark] = {
    '\xf0\u0178\u0178\xa2': Mark.GREEN,
    '\xf0\x9f\x9f\xa2': Mark.GREEN,
    '\u2261\u0192\u0192\xf3': Mark.GREEN,
    '\uf8ff\xfc\xfc\xa2': Mark.GREEN,
    '\u0440\u045f\u045f\u045e': Mark.GREEN,
    '\u6e38\ub9ad': Mark.GREEN,
    '\u6cba\uff62': Mark.GREEN,
    '\ue05e\u6cd9': Mark.GREEN,
    '\u9983\u715d': Mark.GREEN,
    '\xf0\u0178\u0178\xa1': Mark.YELLOW,
    '\xf0\x9f\x9f\xa1': Mark.YELLOW,
    '\u2261\u0192\u0192\xed': Mark.YELLOW,
    '\uf8ff\xfc\xfc\xb0': Mark.YELLOW,
    '\u0440\u045f\u045f\u040e': Mark.YELLOW,
    '\u6e38\ub9ac': Mark.YELLOW,
    '\u6cba\uff61': Mark.YELLOW,
    '\ue05e\u6cef': Mark.YELLOW,
    '\u9983\u715b': Mark.YELLOW,
    '\xf0\u0178\u201d\xb4': Mark.RED,
    '\xf0\x9f\x94\xb4': Mark.RED,
    '\u2261\u0192\xf6\u2524': Mark.RED,
    '\uf8ff\xfc\xee\xa5': Mark.RED,
    '\u0440\u045f\u201d\u0491': Mark.RED,
    '\xf0\x9f\x94\u017d': Mark.RED,
    '\u6e38\ub32e': Mark.RED,
    '\u6c90\uff74': Mark.RED,
    '\ue05e\u95a5': Mark.RED,
    '\u9983\u6576': Mark.RED,
}


@functools.cache
def _forms_pattern() -> re.Pattern[str]:
    forms = sorted(_MARK_FORMS, key=len, reverse=True)  # longest first
    return re.compile("|".join(re.escape(f) for f in forms))


def repair_marks(text: str) -> tuple[str, int]:
    """Replace mojibake forms of 🟢🟡🔴 with the emoji; returns the text and a count."""
    pattern = _forms_pattern()
    count = 0

    def sub(m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return MARK_EMOJI[_MARK_FORMS[m.group(0)]]

    return pattern.sub(sub, text), count


def _ftfy(text: str) -> str:
    # Keep line breaks, HTML entities and quotes exactly: line numbers and code must match.
    # Imported here: ftfy takes a third of a one-file build to import, and only lines that
    # look like mojibake (_SUSPECT_RE) ever reach it.
    import ftfy

    return ftfy.fix_text(
        text,
        unescape_html=False,
        fix_line_breaks=False,
        uncurl_quotes=False,
        fix_latin_ligatures=False,
        fix_character_width=False,
        normalization=None,
        remove_terminal_escapes=False,
        explain=False,
    )


# Bytes cp1252 cannot show: copy-paste drops them, leaving 4-byte characters one short.
_CP1252_HOLES = (0x81, 0x8D, 0x8F, 0x90, 0x9D)
_CONT = "".join(sorted({bytes([b]).decode("cp1252", "ignore") for b in range(0x80, 0xC0)} - {""}))
_SHORT4_RE = re.compile("ð[" + re.escape(_CONT) + "]{2}")


def _likely(ch: str) -> bool:
    cp = ord(ch)
    return 0x1D400 <= cp <= 0x1D7FF or 0x1F000 <= cp <= 0x1FAFF  # math letters, emoji


def repair_lost_bytes(text: str) -> tuple[str, int]:
    """`ð‘š` (𝑚 with its 0x9D dropped) → `𝑚`, when exactly one likely character fits."""
    count = 0

    def sub(m: re.Match[str]) -> str:
        nonlocal count
        tail = m.group(0)[1:].encode("cp1252")
        found = set()
        for pos in range(3):
            for hole in _CP1252_HOLES:
                raw = b"\xf0" + tail[:pos] + bytes([hole]) + tail[pos:]
                try:
                    ch = raw.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                if _likely(ch):
                    found.add(ch)
        if len(found) != 1:
            return m.group(0)
        count += 1
        return found.pop()

    return _SHORT4_RE.sub(sub, text), count


# Mojibake of UTF-8 read as a single-byte codec always shows one of these; a line
# without them (ASCII, emoji, CJK) has nothing for ftfy to fix.
_SUSPECT_RE = re.compile(
    "[\u0080-\u00ff\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)


def _ftfy_suspect_lines(text: str) -> str:
    if not _SUSPECT_RE.search(text):
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _SUSPECT_RE.search(line):
            lines[i] = _ftfy(line)
    return "\n".join(lines)


def decode(data: bytes, path: str = "<bytes>") -> ReadResult:
    """Decode and repair one file's bytes. Never raises on odd bytes."""
    warnings: list[str] = []
    repairs: list[str] = []
    if data.startswith(b"\xef\xbb\xbf"):
        encoding = "utf-8-sig"
        text = data[3:].decode("utf-8", errors="replace")
        repairs.append("removed BOM")
    else:
        try:
            text = data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            text = data.decode(FALLBACK_CODEC, errors="replace")
            encoding = f"{FALLBACK_CODEC} (fallback)"
            warnings.append(
                f"{path}:{line}: not valid UTF-8; decoded as {FALLBACK_CODEC} instead"
            )
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        repairs.append("normalised line endings")
    fixed, n_marks = repair_marks(text)
    if n_marks:
        repairs.append(f"repaired {n_marks} mojibake mark(s)")
    refixed = _ftfy_suspect_lines(fixed)
    if refixed.count("\n") == fixed.count("\n"):
        if refixed != fixed:
            repairs.append("repaired mojibake text (ftfy)")
        fixed = refixed
    else:  # never trade line numbers for a repair
        warnings.append(f"{path}: text repair skipped: it would have moved lines")
    if "ð" in fixed:
        fixed, lost = repair_lost_bytes(fixed)
        if lost:
            repairs.append(f"restored {lost} character(s) that lost a byte in transit")
    # ftfy may have produced fresh marks from forms it could fix only partly.
    fixed, more = repair_marks(fixed)
    if more:
        repairs.append(f"repaired {more} mojibake mark(s) after text repair")
    return ReadResult(fixed, encoding, tuple(repairs), tuple(warnings))


def read_notes(path: Path, display: str | None = None) -> ReadResult:
    """Read a notes file, refusing what is not markdown with a one-line error."""
    shown = display or str(path)
    if not path.exists():
        raise InputError("no such file or directory", path=shown)
    if path.is_dir():
        raise InputError("is a directory, expected a markdown file", path=shown)
    if path.suffix.lower() not in MARKDOWN_SUFFIXES:
        raise InputError(
            f"not a markdown file (expected .md, got {path.suffix or 'no extension'})",
            path=shown,
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=shown) from None
    if b"\x00" in data[:8192]:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise InputError("not a markdown file (binary content)", path=shown, line=line)
    return decode(data, shown)


# What a note controls reaches terminals and cards: its control characters must not.
# ANSI sequences first (CSI with its parameters, OSC up to its terminator, two-byte ESC
# forms), so no parameter bytes are left behind; then C0 except \n and \t, DEL, C1, and the
# bidi overrides and isolates that reorder what is shown (U+202A–U+202E, U+2066–U+2069).
_ANSI_RE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"            # CSI … final byte
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC … BEL/ST
    r"|\x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?"     # DCS, SOS, PM, APC … ST
    r"|\x1b[ -/]*[0-~]?")                          # other escapes, or a lone ESC
_CONTROL_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(text: str) -> str:
    """`text` with ANSI escape sequences, control characters (C0 but \\n and \\t, DEL, C1)
    and bidi overrides removed: safe to print to a terminal or put on a card."""
    if text.isascii() and text.isprintable():
        return text
    if not _CONTROL_RE.search(text):  # every escape sequence opens with one of these
        return text
    return _CONTROL_RE.sub("", _ANSI_RE.sub("", text))


def json_safe(text: str) -> str:
    """JSON text with the characters `json.dumps(ensure_ascii=False)` leaves raw and a
    terminal acts on (C1, bidi overrides) written as \\u escapes: still the same JSON."""
    return _CONTROL_RE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


# Letters of other scripts drawn like ASCII ones (Unicode's confusables, the common ones).
_LOOKALIKES = frozenset(
    "АВЕЅІЈКМНОРСТХУаеорсухіјѕԁӏһԛԝ"      # Cyrillic
    "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧονρ"                  # Greek
    "ǀ∣ⅰⅼℓ")
_INVISIBLE = frozenset("\u00a0\u00ad\u034f\u061c\u115f\u1160\u180e\u200b\u200c\u200d\u200e"
                       "\u200f\u2060\u2061\u2062\u2063\u2064\u2800\u3164\ufeff\uffa0")


def _suspect(ch: str) -> bool:
    import unicodedata

    if ch in _LOOKALIKES or ch in _INVISIBLE:
        return True
    if ch.isascii():
        return not ch.isprintable() and ch not in "\n\t"
    if not ch.isprintable():  # controls, other spaces, format characters (bidi included)
        return True
    folded = unicodedata.normalize("NFKC", ch)  # fullwidth and mathematical letters
    return folded != ch and folded.isascii()


def has_lookalikes(text: str) -> bool:
    """Whether `text` holds characters a reader would take for others, or not see at all."""
    return not (text.isascii() and text.isprintable()) and any(_suspect(c) for c in text)


def reveal(text: str) -> str:
    """`text` with look-alike and invisible characters (and controls) written as \\u
    escapes, so the reader sees why `tеnsor` (Cyrillic е) is not `tensor`."""
    return "".join(_escape(c) if _suspect(c) else c for c in text)


def _escape(ch: str) -> str:
    return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"
