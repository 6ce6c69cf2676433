"""Cards on a 360 px phone in light and night mode, rendered by Anki, measured in Chromium."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "docs"))

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.mark.browser
def test_cards_fit_a_phone_in_both_modes(tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must install chromium (apt-get install chromium)")
        pytest.skip("Debian chromium is not installed")
    pytest.importorskip("torch")
    from playwright.sync_api import sync_playwright
    from screenshots import PAGE, card_pages

    vault = tmp_path / "vault"
    vault.mkdir()
    shutil.copy(ROOT / "tests" / "fixtures" / "checks" / "recall-pytorch-training.md", vault)
    pages = dict(card_pages(vault, tmp_path))
    assert {"code", "cloze", "unanswered"} <= set(pages)
    for html in pages.values():
        assert "style=" not in html.split("</style>")[-1]  # classes, never inline colours
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 360, "height": 740})
        for name, html in pages.items():
            for cls, dark in (("card", False), ("card nightMode night_mode", True)):
                page.set_content(PAGE.format(cls=cls, html=html))
                facts = page.evaluate("""() => {
                    const body = document.body, pre = document.querySelector('pre');
                    const cs = getComputedStyle(body);
                    const code = document.querySelector('.highlight .k, .highlight .n');
                    return {width: document.documentElement.scrollWidth, bg: cs.backgroundColor,
                            fg: cs.color, preOverflow: pre && getComputedStyle(pre).overflowX,
                            preSpace: pre && getComputedStyle(pre).whiteSpace,
                            token: code && getComputedStyle(code).color};
                }""")
                assert facts["width"] <= 360, (name, cls, facts)
                if facts["preOverflow"] is not None:
                    assert facts["preOverflow"] == "auto" and facts["preSpace"] == "pre"
                bg, fg = _lum(facts["bg"]), _lum(facts["fg"])
                if dark:
                    assert bg < 0.2 and fg > 0.6, (name, facts)
                    if facts["token"]:
                        assert _lum(facts["token"]) > 0.35, (name, facts)  # readable on dark
                else:
                    assert bg > 0.8 and fg < 0.3, (name, facts)
        browser.close()


def _lum(css: str) -> float:
    r, g, b = (int(x) / 255 for x in css[css.index("(") + 1:css.index(")")].split(",")[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
