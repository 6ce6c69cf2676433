"""Markdown → card HTML: escaped text, code highlighted with pygments *classes*.

Every entry point strips control characters and bidi overrides first (`text.clean`): what
a note holds never reaches a card as an escape sequence or reordered text.

Inline colours are unreadable in night mode on phones (AnkiDroid no longer inverts
them), so the highlighter emits classes and the note type's CSS carries a light
theme plus a dark one scoped under `.nightMode`.
"""

from __future__ import annotations

import functools
import html
import re

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

from .text import clean

LIGHT_STYLE = "friendly"
# Anything markdown could treat as markup sends the text through markdown-it.
_MARKUP_RE = re.compile(r"[*_`\[\]<>#|~!\\&]|^\s*(?:[-+>=]|\d+[.)])|\n|https?|www\.|  ", re.M)
DARK_STYLE = "monokai"


def _highlight(code: str, lang: str, _attrs: str) -> str:
    code = clean(code)
    try:
        lexer = get_lexer_by_name(lang) if lang else PythonLexer()
    except ClassNotFound:
        lexer = TextLexer()
    return highlight(code, lexer, HtmlFormatter(cssclass="highlight", nowrap=False))


@functools.cache
def _md() -> MarkdownIt:
    # html=False: learner text like "<b>" or "x<y" is shown, never interpreted.
    return MarkdownIt("commonmark", {"html": False, "highlight": _highlight}).enable("table")


def markdown(text: str) -> str:
    """Render a note's markdown to HTML for a card field."""
    if not text:
        return ""
    text = clean(text)
    if not _MARKUP_RE.search(text):  # plain prose: what markdown-it would make of it
        return f"<p>{html.escape(text, quote=False)}</p>"
    return _md().render(text).strip()


def code(text: str, lang: str = "python") -> str:
    return _highlight(text, lang, "").strip()


def plain(text: str) -> str:
    """Escaped text with line breaks kept: for text that is not markdown (paths, output)."""
    return html.escape(clean(text)).replace("\n", "<br>")


# Characters inline CommonMark acts on (emphasis, code, links and images, autolinks,
# escapes, entities): text without any is only escaped. One class: a fast C scan.
_INLINE_MARKUP_RE = re.compile(r"[*_`\[\]<>\\&]")


@functools.cache
def _md_inline() -> MarkdownIt:
    # breaks=True: a line break the learner wrote stays one, as on the page they wrote.
    return MarkdownIt("commonmark", {"html": False, "breaks": True})


def inline(text: str) -> str:
    """The learner's words as inline markdown: `code`, **bold**, links; no blocks, no HTML."""
    text = clean(text)
    if not _INLINE_MARKUP_RE.search(text):
        return plain(text)
    return _md_inline().renderInline(text).replace("<br />\n", "<br>").strip()


def escape_cloze_text(fragment_html: str) -> str:
    """Braces in ordinary text must not open a cloze: `{{c2::` in notes stays text."""
    return fragment_html.replace("{", "&#123;").replace("}", "&#125;")


def cloze_term(term: str) -> str:
    """A cloze answer: `::` and `}}` inside code (`a::b`, `{'a': 1}`) must not end it."""
    return (html.escape(clean(term), quote=False)
            .replace(":", "&#58;").replace("{", "&#123;").replace("}", "&#125;"))


@functools.cache
def css() -> str:
    light = HtmlFormatter(style=LIGHT_STYLE).get_style_defs(".highlight")
    dark = HtmlFormatter(style=DARK_STYLE).get_style_defs(".nightMode .highlight")
    return BASE_CSS + "\n/* pygments: light */\n" + light + "\n/* pygments: night */\n" + dark


BASE_CSS = """
.card { font-family: -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  font-size: 18px; line-height: 1.45; text-align: left; color: #1d1d1f;
  background-color: #fdfdfd; padding: 0 6px; overflow-wrap: anywhere; }
.card.nightMode { color: #e6e6e6; background-color: #1e1e1e; }
.topic { font-size: 0.8em; color: #6b6b6b; margin-bottom: 0.4em; }
.nightMode .topic { color: #a0a0a0; }
.front { font-weight: 500; }
.back { margin-top: 0.6em; }
.back blockquote { margin: 0.4em 0; padding-left: 0.8em; border-left: 3px solid #b9c6d6; }
.nightMode .back blockquote { border-left-color: #4d5b6b; }
.unanswered { font-style: italic; color: #9a4b00; }
.nightMode .unanswered { color: #ffb870; }
.wrote { margin-top: 1em; font-size: 0.8em; color: #555; border-top: 1px dashed #ccc;
  padding-top: 0.4em; }
.nightMode .wrote { color: #b0b0b0; border-top-color: #555; }
.label { font-size: 0.75em; text-transform: uppercase; letter-spacing: 0.05em; color: #888; }
.source { margin-top: 0.8em; font-size: 0.72em; color: #888; }
.check { margin-top: 1em; }
.check .output { font-size: 0.85em; }
.check .status-ok { color: #18794e; } .check .status-fail { color: #b42318; }
.nightMode .check .status-ok { color: #6fdc9b; } .nightMode .check .status-fail { color: #ff8a80; }
pre { overflow-x: auto; white-space: pre; text-align: left; max-width: 100%;
  padding: 0.5em; border-radius: 4px; font-size: 0.82em; }
code { font-family: "JetBrains Mono", Menlo, Consolas, monospace; }
.highlight { background: #f6f8fa; border-radius: 4px; }
.nightMode .highlight { background: #272822; }
.nightMode pre { color: #f8f8f2; }
.cloze { font-weight: bold; color: #0b57d0; }
.nightMode .cloze { color: #8ab4f8; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 2px 6px; }
img { max-width: 100%; height: auto; }
"""
