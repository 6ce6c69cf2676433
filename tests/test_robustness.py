"""Random markdown mixed with marks in all their forms: the parser never raises, and every
line it reports lies inside the file."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ankigen.parse import parse_text
from ankigen.text import MARK_EMOJI, decode, mark_forms

MARKS = sorted(set(MARK_EMOJI.values()) | set(mark_forms()))
PIECES = [
    "# Notes", "# Goal", "## Chapter 3", "---", "***", "```python", "```", "~~~", "> ", ">",
    "=> ", " => the name is nn.Parameter => Good name!", "I forgot the name of that class",
    "(looked up the name.)", "What's the other quirk?", "what else?", "I don't remember",
    "(forgot the rest)", "    indented", "\t", "- ", "1. ", "| a | b |", "|---|---|", "<div>",
    "So, chapter 12 is about CNNs.", "actually this was chapter 10", "x = torch.ones(2)",
    "# prints: tensor([1., 1.])", "for i in range(3):", "**", "`", "[", "]", "(", ")", "{{c1::",
    "}}", "::", "\\", "—", "â€”", "🚀", "\u200b", "\ufeff", "\r", "",
]
line = st.lists(st.one_of(st.sampled_from(PIECES), st.sampled_from(MARKS), st.text(max_size=12)),
                max_size=6).map(" ".join)
documents = st.lists(line, max_size=40).map("\n".join)


def _check(text: str) -> None:
    doc = parse_text(text, "random.md")
    n = doc.line_count
    assert n == len(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    for part in doc.parts:
        assert 1 <= part.span.start <= part.span.end <= n
        for a in part.assessments:
            assert 1 <= a.line <= n and 1 <= a.judged.start <= a.judged.end <= n
    for g in doc.gaps:
        assert 1 <= g.line <= n, g
        assert 1 <= g.span.start <= g.span.end <= n, g
        assert g.prompt
    for c in doc.code_blocks:
        assert 1 <= c.span.start <= c.span.end <= n


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_parser_never_raises_and_lines_stay_inside(text: str) -> None:
    _check(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.sampled_from(["utf-8", "utf-8-sig", "cp1252-mojibake", "latin-1", "utf-16"]))
def test_reader_never_raises_and_keeps_line_count(text: str, how: str) -> None:
    if how == "cp1252-mojibake":
        data = text.encode("utf-8").decode("cp1252", errors="ignore").encode("utf-8")
    elif how == "utf-8-sig":
        data = b"\xef\xbb\xbf" + text.encode("utf-8")
    else:
        data = text.encode(how, errors="replace")
    read = decode(data, "random.md")
    if how != "utf-16":  # utf-16 is not line-compatible bytes; it must only not crash
        expected = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")
        assert read.text.count("\n") == expected.count("\n")
    _check(read.text)
