"""The fidelity fixture's cards, rendered by Anki, typeset by a real MathJax in Chromium.

MathJax 3.2.2 (the version Anki ships) comes from the `django-static-mathjax` package (the
test extra), loaded from disk with Anki's own reviewer configuration, so nothing is fetched.
Every formula MathJax finds must be one the notes hold, byte for byte, and typeset without
an error; no `\\(`, `\\[` or `$$` may be left as text. The same pages are measured at 360 px
(docs/screenshots.py: MEASURE): text contrast in light and night mode, no sideways page
scroll, and a table wider than the phone scrolls inside itself.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from browser import launch, require_chromium

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "docs"))

FIXTURE = ROOT / "tests" / "fixtures" / "fidelity" / "recall-math-markup.md"

# Anki's reviewer configuration (aqt/data/web/js/mathjax.js), the fonts path aside.
ANKI_MATHJAX_CONFIG = r"""window.MathJax = {
  tex: {displayMath: [["\\[", "\\]"]], processEscapes: false, processEnvironments: false,
        processRefs: false, packages: {"[+]": ["noerrors", "mathtools"], "[-]": ["textmacros"]}},
  loader: {load: ["[tex]/noerrors", "[tex]/mathtools"]},
  startup: {typeset: false}};"""

# Every formula MathJax found: its TeX, display or not, and whether it parsed cleanly.
FOUND = r"""() => {
  const out = [];
  for (const item of MathJax.startup.document.math) {
    let error = false;
    item.root.walkTree((node) => { if (node.isKind('merror')) error = true; });
    out.push({tex: item.math, display: item.display, error});
  }
  return {math: out, text: document.body.innerText,
          containers: document.querySelectorAll('mjx-container').length};
}"""

TABLES = r"""() => [...document.querySelectorAll('table')].map(t => ({
  scroll: t.scrollWidth, client: t.clientWidth, right: t.getBoundingClientRect().right}))"""

# The formulas the fixture holds, as written between its delimiters.
EXPECTED = {
    r"\{0, 1\}", r"L = -y \log p", r"\sigma(x) = \frac{1}{1 + e^{-x}}",
    r"L = -\big(y \log p + (1 - y) \log(1 - p)\big)", r"y \in \{0, 1\}",
    "\\int_{-\\infty}^{\\infty} p(x)\\,dx = 1 \\\\\n\\mathbf{w}^*, b^* = \\arg\\min_{w, b} L",
    "(0, 1)", r"[0, \infty)", "x > 0", r"\sigma'(x) = \sigma(x)(1 - \sigma(x))",
    "1 / (1 + e^{-x})", "x = 0", "1/4", r"\sigma",
}


def _mathjax() -> Path:
    mathjax = pytest.importorskip("mathjax", reason="the test extra installs django-static-mathjax")
    path = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / "tex-chtml-full.js"
    assert path.is_file(), path
    return path


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> list[dict[str, Any]]:
    require_chromium()
    from playwright.sync_api import sync_playwright
    from screenshots import MEASURE, PAGE, rendered_cards

    script = _mathjax()
    tmp = tmp_path_factory.mktemp("math")
    vault = tmp / "vault"
    vault.mkdir()
    shutil.copy(FIXTURE, vault)
    cards = rendered_cards(vault, tmp)
    rows = []
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 360, "height": 740})
        for i, (question, answer) in enumerate(cards):
            for side, card_html in (("question", question), ("answer", answer)):
                for mode, cls in (("light", "card"), ("night", "card nightMode night_mode")):
                    page.set_content(PAGE.format(cls=cls, html=card_html))
                    measured = page.evaluate(MEASURE)  # the card's own text, before MathJax
                    page.add_script_tag(content=ANKI_MATHJAX_CONFIG)
                    page.add_script_tag(path=str(script))
                    page.evaluate("() => MathJax.startup.promise.then(() => MathJax.typesetPromise())")
                    rows.append({"card": i, "side": side, "mode": mode, **measured,
                                 **page.evaluate(FOUND), "tables": page.evaluate(TABLES),
                                 "width": page.evaluate("document.documentElement.scrollWidth")})
        browser.close()
    return rows


@pytest.mark.browser
def test_mathjax_typesets_every_formula_byte_for_byte(pages):
    found = [m for r in pages for m in r["math"]]
    assert {m["tex"] for m in found} == EXPECTED
    assert not [m["tex"] for m in found if m["error"]]
    assert any(m["display"] for m in found) and any(not m["display"] for m in found)
    for r in pages:
        assert r["containers"] == len(r["math"])  # every formula found was typeset
        for left in ("\\(", "\\)", "\\[", "\\]", "$$"):
            assert left not in r["text"], (r["card"], r["side"], left)


@pytest.mark.browser
def test_prices_stay_text(pages):
    assert any("a price of $5 and $10 is not math" in r["text"] for r in pages)


@pytest.mark.browser
def test_tables_scroll_inside_themselves_and_the_page_never_does(pages):
    tables = [t for r in pages for t in r["tables"]]
    assert tables
    for r in pages:
        assert r["width"] <= 360, (r["card"], r["side"], r["mode"], r["width"])
    for t in tables:
        assert t["right"] <= 360 and t["client"] <= 348 + 1
    assert any(t["scroll"] > t["client"] + 100 for t in tables)  # the wide one scrolls


@pytest.mark.browser
@pytest.mark.parametrize("mode", ["light", "night"])
def test_callouts_tables_and_footnotes_read_at_4_5_to_1(pages, mode):
    texts = [(t, r["card"]) for r in pages if r["mode"] == mode for t in r["texts"]]
    assert any("callout-title" in t["cls"] for t, _ in texts)
    low = [(card, t["tag"], t["cls"], t["text"], round(t["ratio"], 2)) for t, card in texts
           if t["ratio"] < 4.5]
    assert not low
