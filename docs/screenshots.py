"""Render cards with the official `anki` backend and screenshot them at 360 px in Chromium,
light and night mode, into docs/mobile/. Run: .venv/bin/python docs/screenshots.py"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body class="{cls}" style="margin:0">{html}</body></html>"""


# What a phone shows, measured in the page: WCAG contrast of every element that holds text
# (its computed colour against the background it is painted on, ancestors' backgrounds
# composited), the answer side's height with every <details> closed, text-transform, and
# whether any <pre> scrolls sideways. tests/test_mobile.py asserts these figures.
MEASURE = r"""() => {
  const rgba = (s) => { const m = s.match(/rgba?\(([^)]+)\)/);
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
  const over = (top, under) => [0, 1, 2].map(i => top[i] * top[3] + under[i] * (1 - top[3])).concat([1]);
  const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const painted = (el) => { const chain = []; for (let e = el; e; e = e.parentElement) chain.unshift(e);
    let bg = [255, 255, 255, 1];  // the browser's canvas under everything
    for (const e of chain) { const c = rgba(getComputedStyle(e).backgroundColor); if (c[3] > 0) bg = over(c, bg); }
    return bg; };
  const words = (el) => el ? el.textContent.replace(/\s+/g, ' ').trim() : null;
  const closedHeight = Math.ceil(document.body.getBoundingClientRect().height);
  const back = document.querySelector('.back');
  let visibleBack = null;
  if (back) { const c = back.cloneNode(true); c.querySelectorAll('details').forEach(d => d.remove()); visibleBack = words(c); }
  const details = [...document.querySelectorAll('details')].map(d => d.className);
  document.querySelectorAll('details').forEach(d => d.open = true);
  const texts = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const cs = getComputedStyle(el);
    if (cs.display === 'none' || cs.visibility === 'hidden') continue;
    const bg = painted(el), fg = over(rgba(cs.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    texts.push({ratio: (hi + 0.05) / (lo + 0.05), tag: el.tagName.toLowerCase(), cls: String(el.className),
                code: !!el.closest('.highlight'), text: el.textContent.trim().slice(0, 50),
                transform: cs.textTransform, shown: el.innerText.trim().slice(0, 50)});
  }
  const pres = [...document.querySelectorAll('pre')].map(p => ({cls: p.className, text: p.textContent,
    scroll: p.scrollWidth, client: p.clientWidth, right: p.getBoundingClientRect().right,
    whiteSpace: getComputedStyle(p).whiteSpace}));
  return {closedHeight, openHeight: Math.ceil(document.body.getBoundingClientRect().height),
          width: document.documentElement.scrollWidth, details, texts, pres,
          transforms: [...document.body.querySelectorAll('*')].map(e => getComputedStyle(e).textTransform).filter(t => t !== 'none'),
          background: getComputedStyle(document.body).backgroundColor,
          all: words(document.body),
          wrote: words(document.querySelector('.wrote > div')), visibleBack, back: words(back)};
}"""


def rendered_cards(vault: Path, work: Path) -> list[tuple[str, str]]:
    """(question html, answer html) of every card of the vault, as Anki renders them: the
    deck built with checks, imported into a real collection."""
    from anki.collection import Collection
    from anki_helpers import import_apkg

    from ankigen.build import build
    from ankigen.checks import build_hook

    out = work / "deck.apkg"
    build([vault], out, checks=build_hook("cpu"))
    col = Collection(str(work / "c.anki2"))
    try:
        import_apkg(col, out)
        pages = []
        for cid in col.find_cards(""):
            card = col.get_card(cid)
            pages.append((card.question(), card.answer()))
    finally:
        col.close()
    return pages


def card_pages(vault: Path, work: Path) -> list[tuple[str, str]]:
    """(name, answer html) for a few kinds of card, picked by what their HTML holds."""
    pages = rendered_cards(vault, work)
    wanted = {
        "basic": lambda q, a: 'class="back"' in a and 'class="check"' not in a
        and 'class="unanswered"' not in a,
        "cloze": lambda q, a: "[...]" in q and 'class="check"' in a,
        "unanswered": lambda q, a: 'class="unanswered"' in a,
        "code": lambda q, a: "Error" in a.split('class="output"')[-1],
        "long": lambda q, a: 'class="more"' in a,
    }
    picked = []
    for name, test in wanted.items():
        hit = next(((q, a) for q, a in pages if test(q, a)), None)
        if hit:
            picked.append((name, hit[1]))
    return picked


def shoot(pages: list[tuple[str, str]], dest: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-background-networking",
                                          "--disable-gpu"])
        page = browser.new_page(viewport={"width": 360, "height": 740})
        for name, html in pages:
            for mode, cls in (("light", "card"), ("night", "card nightMode night_mode")):
                page.set_content(PAGE.format(cls=cls, html=html))
                path = dest / f"{name}-{mode}.png"
                page.screenshot(path=str(path), full_page=True)
                f = page.evaluate(MEASURE)
                print(f"{name:>10} {mode:5}: lowest contrast {min(t['ratio'] for t in f['texts']):.2f}:1,"
                      f" {f['closedHeight']} px tall ({f['openHeight']} px with all open)")
                shots.append(path)
        browser.close()
    return shots


def main() -> None:
    os.environ.setdefault("ANKIGEN_CACHE_DIR", tempfile.mkdtemp())
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "vault"
        vault.mkdir()
        for f in (ROOT / "notes").glob("recall-*.md"):
            shutil.copy(f, vault / f.name)
        shutil.copy(ROOT / "tests" / "fixtures" / "mobile" / "recall-long-answers.md", vault)
        pages = card_pages(vault, Path(tmp))
        for p in shoot(pages, ROOT / "docs" / "mobile"):
            print(p.relative_to(ROOT))


if __name__ == "__main__":
    main()
