"""Screenshots of the grading service's pages at 360 px and 1280 px, light and dark, into
docs/service/: a live `grader serve` grading with the scripted tutor model (tests/).
Run: .venv/bin/python docs/service_screenshots.py"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    from playwright.sync_api import expect, sync_playwright
    from service_app import FIXTURES
    from service_live import live_service

    os.environ.setdefault("ANKIGEN_CACHE_DIR", tempfile.mkdtemp())
    dest = ROOT / "docs" / "service"
    dest.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, live_service(Path(tmp)) as live, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-background-networking",
                                          "--disable-gpu"])
        shots: list[tuple[str, str, str]] = []  # (name, user, path)
        page = browser.new_page(viewport={"width": 360, "height": 740})
        page.goto(f"{live.base}/login")
        page.fill("#token", live.tokens["alice"])
        page.click("button[type=submit]")
        for recall, title in (("recall-ch14.md", "Chapter 14"),
                              ("recall-ch14-again.md", "Chapter 14 again")):
            page.goto(f"{live.base}/")
            page.fill("#title", title)
            page.fill("#text", (FIXTURES / recall).read_text())
            page.click("text=Submit for grading")
            expect(page.locator("#state")).to_have_text("graded", timeout=60_000)
        first = page.url.rsplit("/", 1)[0] + "/1"
        shots += [("session", "alice", first), ("home", "alice", f"{live.base}/")]
        tutor = browser.new_page(viewport={"width": 1280, "height": 900})
        tutor.goto(f"{live.base}/login")
        tutor.fill("#token", live.tokens["tina"])
        tutor.click("button[type=submit]")
        shots.append(("class", "tina", f"{live.base}/classes/{live.class_id}"))
        for name, user, url in shots:
            view = page if user == "alice" else tutor
            for width in (360, 1280):
                view.set_viewport_size({"width": width, "height": 740 if width == 360 else 900})
                for scheme in ("light", "dark"):
                    view.emulate_media(color_scheme=scheme)
                    view.goto(url)
                    out = dest / f"{name}-{width}-{scheme}.png"
                    view.screenshot(path=str(out), full_page=width == 360)
                    print(out.relative_to(ROOT))
        browser.close()


if __name__ == "__main__":
    main()
