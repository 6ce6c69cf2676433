"""Reading: encodings, BOM, CRLF and the mojibake forms of the marks."""

from __future__ import annotations

import pytest

from ankigen.model import Mark
from ankigen.text import _MARK_FORMS, WRONG_CODECS, decode, mark_forms, repair_marks


@pytest.mark.parametrize("codec", WRONG_CODECS)
def test_forms_are_derived_for_each_codec(codec):
    forms = mark_forms()
    for emoji, mark in (("🟡", Mark.YELLOW), ("🟢", Mark.GREEN), ("🔴", Mark.RED)):
        try:
            form = emoji.encode("utf-8").decode(codec)
        except UnicodeDecodeError:
            continue  # this codec cannot show these bytes at all (euc_kr, big5)
        assert forms.get(form) is mark, (codec, form)


def test_east_asian_codecs_yield_forms():
    forms = mark_forms()
    for codec in ("johab", "cp932", "gbk", "gb18030"):
        assert forms.get("🟡".encode().decode(codec)) is Mark.YELLOW, codec
    # shift_jis cannot show every byte; what it keeps still names the mark.
    assert forms.get("🟡".encode().decode("shift_jis", errors="ignore")) is Mark.YELLOW


def test_the_forms_found_in_real_notes():
    assert {"ðŸŸ¡": Mark.YELLOW, "ðŸ”´": Mark.RED, "游리": Mark.YELLOW,
            "游릭": Mark.GREEN}.items() <= mark_forms().items()
    assert set(WRONG_CODECS) >= {"cp1252", "latin-1", "johab", "euc_kr", "shift_jis", "gbk", "big5"}


def test_the_written_out_forms_are_the_derived_ones():
    # repair_marks reads a written-out copy (deriving it costs each parse worker ~3 ms);
    # the same forms in the same order, so its pattern's alternation is unchanged.
    assert list(_MARK_FORMS.items()) == list(mark_forms().items())


def test_repair_marks_counts():
    text, n = repair_marks("a ðŸŸ¡ => b\n游릭 => c\n🔴 fine")
    assert text == "a 🟡 => b\n🟢 => c\n🔴 fine" and n == 2


def test_bom_crlf_and_em_dash():
    data = "\ufeff# Notes\r\n\r\nðŸŸ¡ => one â€” two\r\n".encode("utf-8")
    r = decode(data, "x.md")
    assert r.text == "# Notes\n\n🟡 => one — two\n"
    assert r.encoding == "utf-8-sig" and not r.warnings


def test_not_utf8_falls_back_with_a_warning():
    r = decode("# Notes\n\nna\xefve caf\xe9\n".encode("cp1252"), "n.md")
    assert r.text == "# Notes\n\nnaïve café\n"
    assert r.encoding == "cp1252 (fallback)"
    assert r.warnings == ("n.md:3: not valid UTF-8; decoded as cp1252 instead",)


def test_lost_bytes_never_crash_and_keep_lines():
    broken = "# 3\u00f0\u2018\u00a52 + 2\u00f0\u2018\u00a5 + 1\nnext\n"
    r = decode(broken.encode("utf-8"), "m.md")
    assert r.text.count("\n") == 2


def test_ordinary_text_is_untouched():
    text = "Café — naïve 😀 🚀 ✅ `a::b` {'x': 1}\n"
    assert decode(text.encode(), "t.md").text == text


def test_characters_that_lost_a_byte_are_restored():
    from pathlib import Path

    from ankigen.text import read_notes

    seed = Path(__file__).parent / "fixtures" / "seeds" / "reference-fastai-lesson4.md"
    lines = read_notes(seed).text.split("\n")
    assert "**𝑚𝑎𝑥(𝑥, 0)**" in lines[22]
    assert lines[47] == "# 3𝑥2 + 2𝑥 + 1"
    # Icelandic stays Icelandic: only continuation-byte characters can follow the lead.
    assert decode("Það er gott, ðað.\n".encode(), "is.md").text == "Það er gott, ðað.\n"
