"""markdown-it rules for what real notes hold: math, wiki-links, callouts, footnotes, raw HTML.

render.py builds its two renderers (block and inline) from these. Each rule works on
markdown-it's tokens, never on the raw text, so code spans and fences stay as written.

- Math (docs/cards.md, "Math"): `$…$`, `$$…$$`, `\\(…\\)` and `\\[…\\]` become `\\(…\\)` /
  `\\[…\\]` with the LaTeX untouched (only `<`, `>` and `&` escaped, as HTML needs), for the
  MathJax every Anki client ships. Dollars follow pandoc's rule, so prices are not math.
- Wiki-links `[[Note]]`, `[[Note|alias]]`, `[[Note#Heading]]` become their readable text.
  Embeds `![[…]]` are left alone (media.py's).
- Obsidian callouts `> [!tip] Title` become `<blockquote class="callout callout-tip">` with a
  title line: a box of their own, styled by the note type's CSS.
- Footnotes (mdit-py-plugins' footnote plugin): a reference is a superscript number and its
  text follows the field in a small list; an inline renderer drops references.
- Raw HTML: a tag HTML knows is kept (render.py then sanitizes the whole field with nh3);
  anything else that looks like a tag (`List<String>`, `<T>`) is the learner's text, escaped.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

# markdown-it and its plugins are imported when a rule is first added or run, not with
# this module: a vault of plain notes (blocks.py's walk, render's plain paths) never
# needs them, and a build's start-up, before its parse workers fork, is one core alone.
if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.renderer import RendererHTML
    from markdown_it.rules_core import StateCore
    from markdown_it.rules_inline import StateInline
    from markdown_it.token import Token
    from markdown_it.utils import EnvType, OptionsDict

    RenderRule = Callable[[RendererHTML, Sequence[Token], int, OptionsDict, EnvType], str]
    InlineRule = Callable[[StateInline, bool], bool]

RAW_HTML = "ankigen_raw_html"  # env key: the field holds raw HTML that must be sanitized


# --- math ----------------------------------------------------------------------------------


def math_text(latex: str, display: bool) -> str:
    """The delimiters Anki's MathJax reads, the LaTeX byte for byte (escaped for HTML only)."""
    body = html.escape(latex.strip(), quote=False)
    return f"\\[{body}\\]" if display else f"\\({body}\\)"


def _bracket_math(state: StateInline, silent: bool) -> bool:
    """`\\(…\\)` and `\\[…\\]` already in the notes: without this rule CommonMark's escapes
    would eat their backslashes (`\\(` → `(`)."""
    src, pos = state.src, state.pos
    if src[pos] != "\\" or pos + 2 >= state.posMax or src[pos + 1] not in "([":
        return False
    display = src[pos + 1] == "["
    end = src.find("\\]" if display else "\\)", pos + 2, state.posMax)
    if end < 0 or not src[pos + 2:end].strip():
        return False
    if not silent:
        token = state.push("math_inline_double" if display else "math_inline", "math", 0)
        token.content = src[pos + 2:end]
        token.markup = "\\[" if display else "\\("
    state.pos = end + 2
    return True


def _render_math(display: bool, block: bool = False) -> RenderRule:
    def render(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict,
               env: EnvType) -> str:
        text = math_text(tokens[idx].content, display)
        return f'<div class="math">{text}</div>\n' if block else text
    return render


@functools.cache
def _dollar() -> InlineRule:
    from mdit_py_plugins.dollarmath.index import math_inline_dollar

    rule: InlineRule = math_inline_dollar(allow_space=False, allow_digits=False,
                                          allow_double=True)
    return rule


def _dollar_math(state: StateInline, silent: bool) -> bool:
    """mdit-py-plugins' `$` rule, but math never runs across a backtick: in "$x$5 and `$y$`"
    the code span is code, not the end of a formula."""
    if state.src[state.pos] != "$":
        return False
    start = state.pos
    if not _dollar()(state, True):
        return False
    end, state.pos = state.pos, start
    if "`" in state.src[start:end]:
        return False
    if silent:  # a rule that matches in silent mode must still move past what it matched
        state.pos = end
        return True
    return _dollar()(state, False)


_CLOSE = {"$": "$", "$$": "$$", "\\(": "\\)", "\\[": "\\]"}


def _math_in_alt(state: StateCore) -> None:
    """An image's alt text is plain text, where MathJax never runs: its math stays as the
    note wrote it (markdown-it would drop it)."""
    if "![" not in state.src:
        return
    from markdown_it.token import Token

    for tok in state.tokens:
        for child in tok.children or ():
            if child.type == "image" and child.children:
                for k, sub in enumerate(child.children):
                    if sub.type.startswith("math_inline"):
                        text = Token("text", "", 0)
                        text.content = f"{sub.markup}{sub.content}{_CLOSE.get(sub.markup, '')}"
                        child.children[k] = text


def add_math(md: MarkdownIt) -> None:
    # Pandoc's rule (allow_space/allow_digits off): the opening `$` is followed by a
    # non-space, the closing one preceded by a non-space and not followed by a digit, so
    # "$5 and $10" stays text. `$$…$$` inside a line is display math.
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    dollarmath_plugin(md, allow_labels=False, allow_space=False, allow_digits=False,
                      allow_blank_lines=False, double_inline=True)
    md.add_render_rule("math_inline", _render_math(False))
    md.add_render_rule("math_inline_double", _render_math(True))
    md.add_render_rule("math_block", _render_math(True, block=True))
    md.core.ruler.push("math_in_alt", _math_in_alt)


# --- wiki-links ----------------------------------------------------------------------------

_WIKI_RE = re.compile(r"\[\[([^\[\]\n]+?)\]\]")


def wiki_text(inner: str) -> str:
    """What Obsidian shows for `[[inner]]`: the alias, else the note (and heading) named."""
    target, bar, alias = inner.replace("\\|", "|").partition("|")
    if bar and alias.strip():
        return alias.strip()
    note, _, heading = target.partition("#")
    if heading.startswith("^"):
        heading = ""  # a block id (`#^abc`): the note is what a reader knows
    parts = [p.strip() for p in (note, heading) if p.strip()]
    return " › ".join(parts) or inner.strip()


def _wikilink(state: StateInline, silent: bool) -> bool:
    pos = state.pos
    if not state.src.startswith("[[", pos) or (pos > 0 and state.src[pos - 1] == "!"):
        return False  # `![[…]]` is an embed: media's to resolve
    m = _WIKI_RE.match(state.src, pos, state.posMax)
    if not m:
        return False
    if not silent:
        token = state.push("text", "", 0)
        token.content = wiki_text(m.group(1))
    state.pos = m.end()
    return True


def reduce_wikilinks(text: str) -> str:
    """Wiki-links in text that is not markdown (a cloze's term) as their readable text."""
    if "[[" not in text:
        return text
    return _WIKI_RE.sub(lambda m: m.group(0) if m.start() and text[m.start() - 1] == "!"
                        else wiki_text(m.group(1)), text)


# --- callouts ------------------------------------------------------------------------------

_CALLOUT_RE = re.compile(r"^\[!([A-Za-z][\w-]*)\]([+-]?)[ \t]*(.*)$")


def is_callout(quote: str) -> bool:
    """Whether a blockquote's text (its `> ` taken off) opens with `[!type]`."""
    return quote.startswith("[!") and bool(_CALLOUT_RE.match(quote.partition("\n")[0]))


def as_quote(text: str) -> str:
    """A blockquote's text with its `> ` put back, to render it again as a quote."""
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def _callouts(state: StateCore) -> None:
    """`> [!tip] Title` as its first line makes a blockquote a callout (Obsidian's syntax)."""
    from markdown_it.token import Token

    tokens = state.tokens
    i = 0
    while i < len(tokens) - 2:
        tok = tokens[i]
        first = tokens[i + 2]
        if not (tok.type == "blockquote_open" and tokens[i + 1].type == "paragraph_open"
                and first.type == "inline"):
            i += 1
            continue
        head, _, rest = first.content.partition("\n")
        m = _CALLOUT_RE.match(head)
        if not m:
            i += 1
            continue
        kind = m.group(1).lower()
        tok.attrSet("class", f"callout callout-{kind}")
        title_open = Token("paragraph_open", "p", 1, attrs={"class": "callout-title"},
                           block=True, level=tok.level + 1)
        title = Token("inline", "", 0, content=m.group(3).strip() or kind.capitalize(),
                      children=[], block=True, level=tok.level + 2, map=first.map)
        title_close = Token("paragraph_close", "p", -1, block=True, level=tok.level + 1)
        if rest.strip():
            first.content = rest
            tokens[i + 1:i + 1] = [title_open, title, title_close]
        else:  # the title line was the whole paragraph
            tokens[i + 1:i + 4] = [title_open, title, title_close]
        i += 4


# --- footnotes -----------------------------------------------------------------------------

FOOTNOTE_REF_RE = re.compile(r"\[\^([^\]\s]+)\]")
# `[^label]: text` opening a line, outside code: a definition (its indented lines follow).
FOOTNOTE_DEF_RE = re.compile(r"^ {0,3}\[\^([^\]\s]+)\]:[ \t]*(.*)$")


def footnote_definitions(lines: Sequence[str], code: Sequence[tuple[int, int]] = ()
                         ) -> tuple[tuple[str, str], ...]:
    """A file's footnote definitions (label, text), each with its indented continuation
    lines joined; lines in `code` (1-based inclusive ranges: fences) are skipped."""
    skip = {n for start, end in code for n in range(start, end + 1)}
    out: dict[str, str] = {}
    label, text = "", list[str]()
    for n, line in enumerate(lines, 1):
        m = None if n in skip else FOOTNOTE_DEF_RE.match(line)
        if m:
            if label:
                out.setdefault(label, " ".join(text).strip())
            label, text = m.group(1), [m.group(2).strip()]
        elif label and line.startswith(("    ", "\t")) and n not in skip:
            text.append(line.strip())
        elif label and line.strip():
            out.setdefault(label, " ".join(text).strip())
            label, text = "", []
    if label:
        out.setdefault(label, " ".join(text).strip())
    return tuple((k, v) for k, v in out.items() if v)


def _footnote_ref(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict,
                  env: EnvType) -> str:
    meta = tokens[idx].meta
    return f'<sup class="fnref">{int(meta["id"]) + 1}</sup>'


def _fixed(text: str) -> RenderRule:
    def render(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict,
               env: EnvType) -> str:
        return text
    return render


def add_footnotes(md: MarkdownIt) -> None:
    from mdit_py_plugins.footnote import footnote_plugin

    footnote_plugin(md)
    md.add_render_rule("footnote_ref", _footnote_ref)
    md.add_render_rule("footnote_block_open", _fixed('<ol class="footnotes">\n'))
    md.add_render_rule("footnote_block_close", _fixed("</ol>\n"))
    md.add_render_rule("footnote_open", _fixed("<li>"))
    md.add_render_rule("footnote_close", _fixed("</li>\n"))
    md.add_render_rule("footnote_anchor", _fixed(""))


def _drop_footnote_ref(state: StateInline, silent: bool) -> bool:
    """In a one-line field (a front, "what you wrote") a reference is dropped: its text
    would crowd a question, and the definition is not there to number."""
    src, pos = state.src, state.pos
    m = FOOTNOTE_REF_RE.match(src, pos, state.posMax)
    if not m or not src.startswith("[^", pos):
        return False
    state.pos = m.end()
    if (pos == 0 or src[pos - 1] == "\n") and src.startswith(":", m.end()):
        line_end = src.find("\n", m.end())  # a definition line: its text goes with it
        state.pos = state.posMax if line_end < 0 else line_end
    return True


# --- raw HTML ------------------------------------------------------------------------------

_TAG_NAME_RE = re.compile(r"<\s*/?\s*([A-Za-z][A-Za-z0-9-]*)")


def _known(raw: str) -> bool:
    s = raw.lstrip()
    if s.startswith(("<!", "<?")):
        return True  # comments, doctype, CDATA: the sanitizer drops them
    m = _TAG_NAME_RE.match(s)
    if m is None:
        return False
    from .sanitize import KNOWN_TAGS  # here: nh3 loads only for notes that hold HTML

    return m.group(1).lower() in KNOWN_TAGS


def _html_inline(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict,
                 env: EnvType) -> str:
    raw = tokens[idx].content
    if _known(raw):
        env[RAW_HTML] = True
        return raw
    return html.escape(raw, quote=False)


def _html_block(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict,
                env: EnvType) -> str:
    raw = tokens[idx].content
    if _known(raw):
        env[RAW_HTML] = True
        return raw
    return "<p>" + html.escape(raw.rstrip("\n"), quote=False).replace("\n", "<br>") + "</p>\n"


# --- tables --------------------------------------------------------------------------------


def _align_classes(state: StateCore) -> None:
    """Column alignment as a class, not markdown-it's inline `style` (cards carry no inline
    style: the sanitizer drops it, and night mode is done with classes)."""
    for tok in state.tokens:
        if tok.type in ("th_open", "td_open") and tok.attrs.get("style"):
            align = str(tok.attrs.pop("style")).removeprefix("text-align:")
            tok.attrSet("class", f"align-{align}")


def math_rule(state: StateInline, silent: bool) -> bool:
    """`$…$`, `$$…$$`, `\\(…\\)` and `\\[…\\]` alone, for text that is not markdown."""
    ch = state.src[state.pos]
    if ch == "$":
        return _dollar_math(state, silent)
    return ch == "\\" and _bracket_math(state, silent)


def _notes_syntax(drop_footnotes: bool) -> InlineRule:
    """The inline rules above as one, by the character they start with: markdown-it tries
    every rule at every `-`, `:`, `=` … of a line, so one call there instead of four keeps
    the fidelity rules' cost down (bench/bench_render.py)."""
    def rule(state: StateInline, silent: bool) -> bool:
        ch = state.src[state.pos]
        if ch == "$":
            return _dollar_math(state, silent)
        if ch == "\\":
            return _bracket_math(state, silent)
        if ch == "[":
            return _wikilink(state, silent) or (drop_footnotes and _drop_footnote_ref(state, silent))
        return False
    return rule


def add_all(md: MarkdownIt, *, inline_only: bool = False) -> MarkdownIt:
    """Every rule above on `md` (a commonmark renderer with `html` on)."""
    add_math(md)
    # In the dollar plugin's place (before `escape`, so `\(` keeps its backslash, and
    # before `link`, so `[[x]]` is not a link label): `$`, `\(`/`\[`, `[[` and `[^`.
    md.inline.ruler.at("math_inline", _notes_syntax(inline_only))
    if not inline_only:
        add_footnotes(md)
        # A reference the file defines nowhere is dropped rather than shown as `[^x]`.
        md.inline.ruler.after("footnote_ref", "footnote_drop", _drop_footnote_ref)
        md.core.ruler.before("inline", "callout", _callouts)
        md.core.ruler.push("align_classes", _align_classes)
    md.add_render_rule("html_inline", _html_inline)
    md.add_render_rule("html_block", _html_block)
    return md
