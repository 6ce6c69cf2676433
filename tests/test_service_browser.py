"""The service's pages in headless Debian Chromium (Playwright) against a live `grader
serve`: a learner logs in at 360 px, submits, waits, reads the marks, downloads the session
deck and the weak-spot deck and imports both into Anki; a second session, then a second
weak-spot download, re-imports with no duplicates; the tutor's class view at 1280 px. Every
page is measured light and dark: text contrast ≥ 4.5:1 and nothing wider than the screen."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from service_app import FIXTURES

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                                        else None)
pytestmark = [pytest.mark.timeout(240), pytest.mark.browser, pytest.mark.slow]
AA = 4.5
# WCAG contrast of every element holding text, against the backgrounds painted under it
# (as docs/screenshots.py measures cards); SVG text is measured by its fill.
CONTRAST = r"""() => {
  const rgba = (s) => { const m = s.match(/rgba?\(([^)]+)\)/); if (!m) return [0, 0, 0, 0];
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const painted = (el) => { const chain = []; for (let e = el; e; e = e.parentElement) chain.unshift(e);
    let bg = [255, 255, 255, 1];
    for (const e of chain) { const c = rgba(getComputedStyle(e).backgroundColor); if (c[3] > 0) bg = over(c, bg); }
    return bg; };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden' || el.closest('title')) continue;
    const svg = el instanceof SVGElement;
    const bg = painted(svg ? el.ownerSVGElement.parentElement : el);
    const fg = over(rgba(svg ? cs.fill : cs.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    out.push({ratio: (hi + 0.05) / (lo + 0.05), tag: el.tagName.toLowerCase(),
              cls: String(el.className.baseVal ?? el.className), text: el.textContent.trim().slice(0, 50)});
  }
  return out;
}"""


def measure(page, where: str) -> list[str]:
    """Contrast and width problems of the page as shown, light then dark."""
    problems = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        texts = page.evaluate(CONTRAST)
        assert texts, where
        problems += [f"{where} {scheme}: {t['ratio']:.2f}:1 <{t['tag']} class={t['cls']}> "
                     f"{t['text']!r}" for t in texts if t["ratio"] < AA]
        width = page.evaluate("document.documentElement.scrollWidth")
        viewport = page.viewport_size["width"]
        if width > viewport:
            problems.append(f"{where} {scheme}: {width} px wide on a {viewport} px screen")
    page.emulate_media(color_scheme="light")
    return problems


def download(page, link: str, dest: Path) -> Path:
    with page.expect_download() as d:
        page.click(link)
    d.value.save_as(dest)
    return dest


@pytest.fixture
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must install chromium (apt-get install chromium)")
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        yield b
        b.close()


def test_a_learner_and_a_tutor_use_the_pages(tmp_path, browser):
    from anki.collection import Collection
    from anki_helpers import import_apkg
    from playwright.sync_api import expect
    from service_live import live_service

    problems: list[str] = []
    dialogs: list[str] = []
    with live_service(tmp_path) as live:
        phone = browser.new_context(viewport={"width": 360, "height": 740}, accept_downloads=True)
        page = phone.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(f"{live.base}/login")
        problems += measure(page, "login")
        page.fill("#token", live.tokens["alice"])
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Submit a recall session")
        problems += measure(page, "home (empty)")

        def submit(recall: str, title: str) -> None:
            page.goto(f"{live.base}/")
            page.fill("#title", title)
            page.fill("#text", (FIXTURES / recall).read_text())
            expect(page.locator(f"#src-{live.source_id}")).to_be_checked()  # the class's source
            page.click("text=Submit for grading")
            expect(page.locator("#state")).to_have_text("graded", timeout=60_000)

        submit("recall-ch14.md", "Chapter 14")
        expect(page.locator(".part .mark.red").first).to_be_visible()
        expect(page.locator(".part .mark.yellow").first).to_be_visible()
        expect(page.get_by_text("Pooling layers have no trainable parameters").first).to_be_visible()
        problems += measure(page, "graded session")
        col = Collection(str(tmp_path / "phone.anki2"))
        try:
            deck = download(page, "text=Download this session's deck", tmp_path / "s1.apkg")
            first = import_apkg(col, deck)
            assert first.new >= 3
            weak = download(page, "text=Download weak-spots.apkg >> nth=0", tmp_path / "w1.apkg")
            assert import_apkg(col, weak).new == 0
            notes = len(col.find_notes(""))
            assert notes == first.new

            submit("recall-ch14-again.md", "Chapter 14 again")
            recall = page.locator("pre.recall")
            expect(recall).to_contain_text('<script>alert("pwned")</script>')  # shown as text
            assert dialogs == []  # and never run
            weak2 = download(page, "text=Download weak-spots.apkg >> nth=0", tmp_path / "w2.apkg")
            log = import_apkg(col, weak2)
            assert log.new >= 1 and log.duplicate == notes and log.conflicting == 0
            guids = [col.get_note(n).guid for n in col.find_notes("")]
            assert len(guids) == len(set(guids)) == notes + log.new
        finally:
            col.close()
        page.goto(f"{live.base}/")
        expect(page.locator("svg.chart")).to_be_visible()
        problems += measure(page, "home (two sessions)")

        desk = browser.new_context(viewport={"width": 1280, "height": 900})
        tutor = desk.new_page()
        tutor.goto(f"{live.base}/login")
        tutor.fill("#token", live.tokens["tina"])
        tutor.click("button[type=submit]")
        tutor.click("text=CNN course")
        expect(tutor.locator("h1")).to_have_text("CNN course")
        expect(tutor.get_by_role("cell", name="alice").first).to_be_visible()
        expect(tutor.get_by_text("1 of 1").first).to_be_visible()  # missed by the one learner
        problems += measure(tutor, "class view")
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(f"{live.base}/")
        problems += measure(page, "home at 1280")
    assert problems == []
