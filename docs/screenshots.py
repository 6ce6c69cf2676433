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


def card_pages(vault: Path, work: Path) -> list[tuple[str, str]]:
    """(name, answer html) for a few kinds of card, as Anki renders them."""
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
    wanted = {
        "basic": lambda q, a: "What is missing or wrong here?" in q,
        "cloze": lambda q, a: "[...]" in q and "Check:" in a,
        "unanswered": lambda q, a: "no answer for this yet" in a,
        "code": lambda q, a: "what is wrong with this line" in q,
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
        pages = card_pages(vault, Path(tmp))
        for p in shoot(pages, ROOT / "docs" / "mobile"):
            print(p.relative_to(ROOT))


if __name__ == "__main__":
    main()
