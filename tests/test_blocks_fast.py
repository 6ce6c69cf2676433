"""blocks.py's plain-notes walk gives exactly markdown-it's blocks wherever it answers.

`_plain_blocks` replaces markdown-it's block parse for files of margin prose, headings,
quotes, `---` breaks and closed fences, and answers None for anything else (the file then
goes to markdown-it). Each test compares it with `_markdown_blocks` (markdown-it), on the
fixtures and on generated documents, and checks that it does answer where it should.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ankigen.blocks import Block, _markdown_blocks, _plain_blocks, to_blocks

FIXTURES = Path(__file__).parent / "fixtures"

# Lines the walk builds blocks from, lines at the edges of what it accepts, and lines it
# must hand to markdown-it (lists, tables, HTML, references, indented lines).
LINES = [
    "", "", "", " ", "\t", "  ", "text é😀", "para line", "# Head", "## Sub ##", "# C#", "###### x",
    "####### no", "#", "#x", "# ", "##\tTab", "```", "```python", "``` py ", "~~~", "~~~ x`y",
    "````", "`````", "``` `", "```x`", "  ```", "   ```", "\t```", "    ```", "``` ```", "~~~~",
    "``", "~~", "> quote", "> - q item", ">", "> ", ">  x", ">\t", "> > deep", "> >", ">>",
    ">```", "> ```",
    " > x", "---", "***", "___", "----", "--- ", "---\t", "- - -", "-- ", "--", "**bold**",
    "*em*", "__x__", "_x_", "+++", "+ x", "- x", "* x", "1. x", "2) x", "10. ten", "2026 was",
    "1.5 is", "1.", "-", "a | b", "|", "<div>", "[ref]: x", "[^1]: n", "x [y]", "=> answer",
    "===", "🟡 => fine", "🔴 mark", "(looked up)", "\u00a0", "\x0c", "\u2028", "\\# not",
    "    indented", " lead", "$$", "$$x$$", "text `code` more", "text ``` mid", "`~~`",
]
PLAIN = [line for line in LINES if _plain_blocks([line]) is not None] + [">", "> ", ">\t", ""]


def _same_where_answered(text: str) -> bool:
    """Compare on `text`; True when the walk answered (and agreed), False when it passed."""
    lines = text.split("\n")
    fast = _plain_blocks(lines)
    if fast is None:
        return False
    assert fast == _markdown_blocks(text, lines), repr(text)
    return True


def test_the_walk_agrees_with_markdown_it_on_every_fixture():
    answered = []
    for path in sorted(FIXTURES.rglob("*.md")):
        text = path.read_text(encoding="utf-8", errors="replace")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if _same_where_answered(text):
            answered.append(path.relative_to(FIXTURES).as_posix())
    # Prose-and-marks recall sessions are what the walk is for: it must answer for them.
    assert "seeds/recall-ch9-10.md" in answered and "labelled/cnn/recall.md" in answered
    assert len(answered) >= 40, answered


@pytest.mark.parametrize("line", ["# C#", "## Sub ##", "# #", "# a # b #", "### F#  ",
                                  "#  spaced   ##   ", "# ####", "# x\\#"])
def test_a_heading_title_is_what_commonmark_reads(line):
    """A closing run of #s goes only after a space: "# C#" is about C#."""
    from markdown_it import MarkdownIt

    inline = [t for t in MarkdownIt("commonmark").parse(line) if t.type == "inline"]
    (fast,) = _plain_blocks([line]) or []
    (slow,) = _markdown_blocks(line, [line])
    assert fast.text == slow.text == (inline[0].content if inline else "")


@pytest.mark.parametrize("text", ["> >\n\n", "> a\n> >\n\nb", "> # h\n> >\n\n\nb", ">>\n\nx"])
def test_an_empty_quote_inside_a_quote_ends_where_markdown_it_ends_it(text):
    """markdown-it's inner quote skips the blank lines after the outer one, and the outer
    quote's lines end with it; the walk leaves such files to markdown-it."""
    lines = text.split("\n")
    assert _plain_blocks(lines) is None
    assert to_blocks(text) == _markdown_blocks(text, lines)


def test_the_walk_agrees_with_markdown_it_on_generated_documents():
    rng = random.Random(13)
    answered = 0
    for _ in range(4000):
        pool = PLAIN if rng.random() < 0.9 else LINES
        lines = [rng.choice(pool) for _ in range(rng.randint(1, 18))]
        answered += _same_where_answered("\n".join(lines) + rng.choice(["", "\n", "\n\n", " "]))
    assert answered > 1000  # a quarter and more: the comparison is not vacuous


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(LINES), min_size=1, max_size=14), st.sampled_from(["", "\n"]))
def test_the_walk_agrees_with_markdown_it_on_any_mix(lines, end):
    _same_where_answered("\n".join(lines) + end)


def test_a_quote_ending_in_empty_lines_keeps_markdown_its_map():
    # markdown-it's own parse of the quote skips the blank lines after it, or not: both kinds.
    for text, end in (("> a\n>\n>\n\n\nb\n", 5), ("> a\n>\n\nb", 2), (">\n\n", 2), ("> a\n", 1)):
        blocks = _plain_blocks(text.split("\n"))
        assert blocks is not None and blocks[0].kind == "quote" and blocks[0].end == end, text
        assert _same_where_answered(text)


def test_what_the_walk_does_not_build_goes_to_markdown_it():
    for text in ("a\n- item\n", "| a | b |\n|---|---|\n", "<div>\nx\n</div>\n",
                 "[ref]: http://x\n", "a\n    indented\n", "```\nunclosed\n", "> q\nlazy\n",
                 "> - item\n>\n", "1. one\n", "- - -\n"):
        assert _plain_blocks(text.split("\n")) is None, text


def test_to_blocks_takes_the_walk_for_plain_notes_and_markdown_it_for_the_rest():
    plain = "# Notes\n\nI wrote this.\n🟡 => fine\n> The book.\n\n```python\nx = 1\n```\n---\nMore.\n"
    assert to_blocks(plain) == _markdown_blocks(plain, plain.split("\n"))
    assert [(b.kind, b.start, b.end) for b in to_blocks(plain)] == [
        ("heading", 1, 1), ("para", 3, 4), ("quote", 5, 5), ("fence", 8, 8), ("hr", 10, 10),
        ("para", 11, 11)]
    listed = "# Notes\n\n- one\n- two\n"
    assert to_blocks(listed)[1] == Block("list", 3, 4, "- one\n- two", items=((3, 3, 0), (4, 4, 0)))
