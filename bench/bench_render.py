"""What the fidelity rules (math, wiki-links, footnotes, callouts, raw HTML; ankigen/md_rules.py)
cost per card, as a ratio against the renderer before them, measured in the same run.

The baseline is the old renderer rebuilt here: markdown-it commonmark with raw HTML off, no
plugins, the same plain-text fast paths. Both render every field text of the cards of
bench_build's generated vault (prompts and "what you wrote" inline, answers as blocks), and
of the fidelity fixture repeated, best of --repeat runs each, interleaved.
Run: .venv/bin/python bench/bench_render.py [--files 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from markdown_it import MarkdownIt  # noqa: E402

from ankigen import render  # noqa: E402
from ankigen.parse import parse_text  # noqa: E402
from ankigen.text import clean  # noqa: E402

_OLD_MARKUP_RE = re.compile(r"[*_`\[\]<>#|~!\\&]|^\s*(?:[-+>=]|\d+[.)])|\n|https?|www\.|  ", re.M)
_OLD_INLINE_RE = re.compile(r"[*_`\[\]<>\\&]")
_OLD_MD = MarkdownIt("commonmark", {"html": False}).enable("table")
_OLD_INLINE = MarkdownIt("commonmark", {"html": False, "breaks": True})


def old_markdown(text: str) -> str:
    if not text:
        return ""
    text = clean(text)
    if not _OLD_MARKUP_RE.search(text):
        return f"<p>{html.escape(text, quote=False)}</p>"
    return _OLD_MD.render(text).strip()


def old_inline(text: str) -> str:
    text = clean(text)
    if not _OLD_INLINE_RE.search(text):
        return render.plain(text)
    return _OLD_INLINE.renderInline(text).replace("<br />\n", "<br>").strip()


def field_texts(files: int) -> tuple[list[str], list[str]]:
    """(inline texts, block texts) of every gap of a generated vault and the fixture."""
    import random

    from bench_build import recall_file

    rng = random.Random(7)
    docs = [parse_text(recall_file(rng, n), f"f{n}.md") for n in range(files)]
    fixture = (ROOT / "tests" / "fixtures" / "fidelity" / "recall-math-markup.md").read_text()
    docs += [parse_text(fixture, "fixture.md")] * max(1, files // 10)
    inline = [t for d in docs for g in d.gaps for t in (g.prompt, g.context) if t]
    block = [g.answer for d in docs for g in d.gaps if g.answer]
    return inline, block


def _time(md, inl, inline: list[str], block: list[str]) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for t in inline:
        inl(t)
    for t in block:
        md(t)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    inline, block = field_texts(args.files)
    old, new = [], []
    for _ in range(args.repeat):
        old.append(_time(old_markdown, old_inline, inline, block))
        new.append(_time(render.markdown, render.inline, inline, block))
    n = len(inline) + len(block)
    print(f"{n} field texts ({len(inline)} inline, {len(block)} block), best of {args.repeat}:")
    print(f"  before the fidelity rules: {min(old) * 1e3:7.1f} ms ({min(old) / n * 1e6:.1f} us a text)")
    print(f"  now:                       {min(new) * 1e3:7.1f} ms ({min(new) / n * 1e6:.1f} us a text)")
    print(f"  ratio now / before: {min(new) / min(old):.2f}x")


if __name__ == "__main__":
    main()
