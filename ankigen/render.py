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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import md_rules
from .text import clean

if TYPE_CHECKING:  # markdown-it and pygments load on first use (see md_rules)
    from markdown_it import MarkdownIt

LIGHT_STYLE = "friendly"
# Anything markdown could treat as markup sends the text through markdown-it.
_MARKUP_RE = re.compile(r"[*_`\[\]<>#|~!\\&$]|^\s*(?:[-+>=]|\d+[.)])|\n|https?|www\.|  ", re.M)
DARK_STYLE = "monokai"


def _highlight(code: str, lang: str, _attrs: str) -> str:
    # Imported on first use: most builds of a few notes highlight no code at all.
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer, TextLexer, get_lexer_by_name
    from pygments.util import ClassNotFound

    code = clean(code)
    try:
        lexer = get_lexer_by_name(lang) if lang else PythonLexer()
    except ClassNotFound:
        lexer = TextLexer()
    return highlight(code, lexer, HtmlFormatter(cssclass="highlight", nowrap=False))


@functools.cache
def _md() -> MarkdownIt:
    # html=True: a tag HTML knows is kept and the field sanitized (sanitize.py); text that
    # only looks like a tag ("List<String>", "x<y") is shown as written (md_rules.py).
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True, "highlight": _highlight}).enable("table")
    return md_rules.add_all(md)


def markdown(text: str, footnotes: Mapping[str, str] | None = None) -> str:
    """Render a note's markdown to HTML for a card field. `footnotes` holds the file's
    footnote definitions (label → text): a reference to one the text does not define itself
    is numbered and its text follows the field."""
    if not text:
        return ""
    text = clean(text)
    if not _MARKUP_RE.search(text):  # plain prose: what markdown-it would make of it
        return f"<p>{html.escape(text, quote=False)}</p>"
    if footnotes and "[^" in text:
        text = _with_definitions(text, footnotes)
    env: dict[str, Any] = {}
    out = _md().render(text, env).strip()
    return _sanitized(out) if env.get(md_rules.RAW_HTML) else out


def _sanitized(fragment: str) -> str:
    # Imported here: only a field that holds raw HTML needs nh3 (a few ms of every start-up).
    from . import sanitize

    return sanitize.clean(fragment)


def _with_definitions(text: str, footnotes: Mapping[str, str]) -> str:
    defined = {m.group(1) for line in text.split("\n")
               if (m := md_rules.FOOTNOTE_DEF_RE.match(line))}
    wanted = dict.fromkeys(m.group(1) for m in md_rules.FOOTNOTE_REF_RE.finditer(text))
    extra = [f"[^{label}]: {clean(footnotes[label])}" for label in wanted
             if label in footnotes and label not in defined]
    return "\n\n".join([text, *extra]) if extra else text


@functools.lru_cache(maxsize=1024)
def code(text: str, lang: str = "python") -> str:
    # Cached: a build with checks shows the same check's code on many cards, and pygments
    # takes ~0.8 ms a block (2.4 s of serial CPU for 3,000 cards with a check each).
    return _highlight(text, lang, "").strip()


def plain(text: str) -> str:
    """Escaped text with line breaks kept: for text that is not markdown (paths, output)."""
    return html.escape(clean(text)).replace("\n", "<br>")


@functools.cache
def _md_math_only() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("zero")  # text and nothing else: no emphasis, links or escapes
    md_rules.add_math(md)
    md.inline.ruler.at("math_inline", md_rules.math_rule)
    return md


def plain_math(text: str) -> str:
    """`plain`, but the math a heading or topic holds is math and its wiki-links read as
    text (the Source field)."""
    if "[[" in text:
        text = md_rules.reduce_wikilinks(text)
    if "$" not in text and "\\" not in text:
        return plain(text)
    return _md_math_only().renderInline(clean(text)).replace("\n", "<br>")


# Characters inline CommonMark acts on (emphasis, code, links and images, autolinks,
# escapes, entities; `$` for math): text without any is only escaped. One class: a fast C scan.
_INLINE_MARKUP_RE = re.compile(r"[*_`\[\]<>\\&$]")
# A GFM table's delimiter row: `|---|:--:|`.
_TABLE_DELIM_RE = re.compile(r"^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)+\|?[ \t]*$", re.M)


@functools.cache
def _md_inline() -> MarkdownIt:
    # breaks=True: a line break the learner wrote stays one, as on the page they wrote.
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True, "breaks": True})
    return md_rules.add_all(md, inline_only=True)


def inline(text: str) -> str:
    """The learner's words as inline markdown: `code`, **bold**, links, math, safe inline
    HTML; no blocks."""
    text = clean(text)
    if "|" in text and "\n" in text and _TABLE_DELIM_RE.search(text):
        return markdown(text)  # a table the learner wrote stays a table, not rows of pipes
    if not _INLINE_MARKUP_RE.search(text):
        return plain(text)
    env: dict[str, Any] = {}
    out = _md_inline().renderInline(text, env).replace("<br />\n", "<br>").strip()
    out = _sanitized(out) if env.get(md_rules.RAW_HTML) else out
    # A cloze's text is rendered in pieces around its term: the spaces at their ends are
    # the learner's, as on the plain path.
    return (" " if text[:1] == " " else "") + out + (" " if text[-1:] == " " else "")


def escape_cloze_text(fragment_html: str) -> str:
    """Braces in ordinary text must not open a cloze: `{{c2::` in notes stays text."""
    return fragment_html.replace("{", "&#123;").replace("}", "&#125;")


def cloze_term(term: str) -> str:
    """A cloze answer: `::` and `}}` inside code (`a::b`, `{'a': 1}`) must not end it."""
    return (html.escape(md_rules.reduce_wikilinks(clean(term)), quote=False)
            .replace(":", "&#58;").replace("{", "&#123;").replace("}", "&#125;"))


# The card's own backgrounds (contrast is measured against them, never the client's).
LIGHT_BG, NIGHT_BG = "#fdfdfd", "#1e1e1e"
LIGHT_CODE_BG, NIGHT_CODE_BG = "#f3f5f7", "#272822"
MIN_CONTRAST = 4.6  # WCAG AA asks 4.5:1 for text; a little over, for rounding in browsers


def _rgb(hex_: str) -> tuple[float, float, float]:
    h = hex_.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255


def _luminance(rgb: tuple[float, float, float]) -> float:
    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""
    a, b = _luminance(_rgb(fg)), _luminance(_rgb(bg))
    return (max(a, b) + 0.05) / (min(a, b) + 0.05)


def readable(fg: str, bg: str, minimum: float = MIN_CONTRAST) -> str:
    """`fg`, mixed towards black on a light `bg` (white on a dark one) until it reads."""
    target = (0.0, 0.0, 0.0) if _luminance(_rgb(bg)) > 0.18 else (1.0, 1.0, 1.0)
    rgb = _rgb(fg)
    for step in range(21):
        t = step / 20
        mixed = tuple(v + (w - v) * t for v, w in zip(rgb, target, strict=True))
        out = "#" + "".join(f"{round(v * 255):02x}" for v in mixed)
        if contrast(out, bg) >= minimum:
            return out
    return out


def _readable_theme(style: str, scope: str, code_bg: str) -> str:
    """pygments' class CSS for `style` under `scope`, each token colour made to read on the
    background it is drawn on (its own, or the code block's)."""
    from pygments.formatters import HtmlFormatter

    out = []
    for line in HtmlFormatter(style=style).get_style_defs(scope).splitlines():
        if not line.startswith(scope + " ."):  # page-wide rules and the block's own colours
            continue
        rule = line.split("/*")[0]
        own_bg = re.search(r"background-color: (#[0-9a-fA-F]{3,6})\b", rule)
        bg = own_bg.group(1) if own_bg else code_bg
        colour = re.search(r"(?<![-\w])color: (#[0-9a-fA-F]{3,6})\b", rule)
        if colour:
            rule = rule.replace(colour.group(), f"color: {readable(colour.group(1), bg)}")
        out.append(rule.rstrip())
    return "\n".join(out)


@functools.cache
def css() -> str:
    light = _readable_theme(LIGHT_STYLE, ".highlight", LIGHT_CODE_BG)
    dark = _readable_theme(DARK_STYLE, ".nightMode .highlight", NIGHT_CODE_BG)
    # A token the dark theme leaves alone must not keep its light colour at night.
    dark_set = set(re.findall(r"^\.nightMode \.highlight (\.\w+) ", dark, re.M))
    dark += "".join(f"\n.nightMode .highlight {cls} {{ color: inherit; background-color: "
                    "transparent }" for cls in re.findall(r"^\.highlight (\.\w+) ", light, re.M)
                    if cls not in dark_set)
    return (BASE_CSS + "\n/* pygments: light */\n" + light + "\n/* pygments: night */\n" + dark
            + "\n")


# Every colour here reads at >= 4.5:1 on the background it is drawn on, in both modes
# (tests/test_mobile.py measures it). No text-transform anywhere: labels hold code names.
# Check output and code wrap: on a 360 px phone a scrolling <pre> hides the error line.
BASE_CSS = f"""
.card {{ font-family: -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif;
  font-size: 18px; line-height: 1.45; text-align: left; color: #1d1d1f;
  background-color: {LIGHT_BG}; padding: 0 6px; overflow-wrap: anywhere; }}
.card.nightMode {{ color: #e6e6e6; background-color: {NIGHT_BG}; }}
.topic {{ font-size: 0.8em; color: #595959; margin-bottom: 0.4em; }}
.nightMode .topic {{ color: #b0b0b0; }}
.front {{ font-weight: 500; }}
.back {{ margin-top: 0.6em; }}
.back blockquote {{ margin: 0.4em 0; padding-left: 0.8em; border-left: 3px solid #b9c6d6; }}
.nightMode .back blockquote {{ border-left-color: #4d5b6b; }}
.unanswered {{ font-style: italic; color: #8a4200; }}
.nightMode .unanswered {{ color: #ffb870; }}
.wrote {{ margin-top: 1em; font-size: 0.8em; color: #4a4a4a; border-top: 1px dashed #ccc;
  padding-top: 0.4em; }}
.nightMode .wrote {{ color: #c4c4c4; border-top-color: #555; }}
.label {{ font-size: 0.75em; letter-spacing: 0.02em; color: #595959; }}
.nightMode .label {{ color: #b0b0b0; }}
summary {{ cursor: pointer; color: #2f4f7f; }}
.nightMode summary {{ color: #9fc0ee; }}
.wrote summary.label {{ font-size: 0.94em; }}
details.more {{ margin-top: 0.4em; }}
details.more > summary {{ font-size: 0.8em; }}
details.check-code > summary {{ font-size: 0.75em; }}
.source {{ margin-top: 0.8em; font-size: 0.72em; color: #595959; }}
.nightMode .source {{ color: #b0b0b0; }}
.check {{ margin-top: 1em; }}
.check .output {{ font-size: 0.85em; }}
.check .status-ok {{ color: #146c43; }} .check .status-fail {{ color: #b42318; }}
.nightMode .check .status-ok {{ color: #6fdc9b; }}
.nightMode .check .status-fail {{ color: #ff8a80; }}
pre {{ white-space: pre-wrap; overflow-wrap: anywhere; overflow-x: visible; text-align: left;
  max-width: 100%; padding: 0.5em; border-radius: 4px; font-size: 0.82em; line-height: 1.3;
  margin: 0.4em 0; }}
code {{ font-family: "JetBrains Mono", Menlo, Consolas, monospace; }}
.highlight {{ background: {LIGHT_CODE_BG}; color: #1d1d1f; border-radius: 4px; }}
.nightMode .highlight {{ background: {NIGHT_CODE_BG}; color: #f8f8f2; }}
.nightMode pre {{ color: #f8f8f2; }}
.cloze {{ font-weight: bold; color: #0b57d0; }}
.nightMode .cloze {{ color: #8ab4f8; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 2px 6px; }}
img {{ max-width: 100%; height: auto; }}
/* media.py: a remote image (loads only online) is outlined; one left out is a short note */
img.remote-image {{ outline: 1px dashed #595959; outline-offset: 2px; }}
.missing-image {{ font-style: italic; color: #8a4200; }}
.nightMode .missing-image {{ color: #ffb870; }}
/* A table wider than the phone scrolls sideways on its own; the page never does. Words in
   cells are not broken anywhere (the card's rule), or a wide table would squeeze to letters. */
table {{ display: block; max-width: 100%; overflow-x: auto; margin: 0.4em 0;
  overflow-wrap: normal; }}
td, th {{ overflow-wrap: normal; word-break: normal; vertical-align: top; }}
th {{ background-color: #eef1f5; }}
.nightMode th {{ background-color: #2c2f33; }}
.nightMode td, .nightMode th {{ border-color: #555; }}
.align-left {{ text-align: left; }} .align-center {{ text-align: center; }}
.align-right {{ text-align: right; }}
/* MathJax: a display formula wider than the phone scrolls inside itself. */
.math, mjx-container[display="true"] {{ max-width: 100%; overflow-x: auto; overflow-y: hidden; }}
/* Obsidian callouts (> [!tip] Title): a box of their own, after the answer. */
.back blockquote.callout, blockquote.callout {{ margin: 0.6em 0; padding: 0.3em 0.7em;
  border-left: 4px solid #3d6db5; border-radius: 4px; background-color: #eef4fb; }}
.nightMode .back blockquote.callout, .nightMode blockquote.callout {{
  background-color: #1f2a38; border-left-color: #6f9be0; }}
.callout-title {{ font-weight: 600; color: #1f4e8c; margin: 0.2em 0; }}
.nightMode .callout-title {{ color: #9fc0ee; }}
.callout-tip, .callout-hint, .callout-important, .callout-success, .callout-check,
.callout-done {{ border-left-color: #2e7d4f !important; }}
.callout-warning, .callout-caution, .callout-attention {{ border-left-color: #b26a00 !important; }}
.callout-danger, .callout-error, .callout-failure, .callout-fail, .callout-missing,
.callout-bug {{ border-left-color: #b42318 !important; }}
.callout-question, .callout-help, .callout-faq, .callout-example {{
  border-left-color: #6b4fbb !important; }}
/* Footnotes: a number on the text, their words in a small list after it. */
sup.fnref {{ font-size: 0.7em; line-height: 0; }}
ol.footnotes {{ font-size: 0.8em; color: #4a4a4a; border-top: 1px solid #ddd;
  margin-top: 0.8em; padding-top: 0.3em; }}
.nightMode ol.footnotes {{ color: #c4c4c4; border-top-color: #555; }}
ol.footnotes p {{ margin: 0.1em 0; }}
"""
