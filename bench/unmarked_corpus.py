"""Cards from notes nobody marked (issue 12, item 1): how many such files yield any card.

A learner points ankigen at the notes folder they already have. Files that are neither
marked (🟢/🟡/🔴, mojibake forms included) nor recall-shaped (docs/cards.md, "Which files
make cards") must make no cards; the target is card-yielding such files ÷ such files
≤ 1 %. Each corpus is copied to a temporary folder (a build writes its manifest beside the
notes) and built once, with checks when a sandbox is here (so code that fails, imports what
is not installed or carries claims is judged as a real build judges it), into a fresh
cache. Cards are attributed to files by the card's own file.

Corpora (each a folder of markdown files; folders are walked):
- ../shared/corpus/realworld/unmarked — 50 real files from public repositories;
- tests/fixtures/unmarked — this project's own corpus (README there lists its kinds);
- ../shared/corpus/realworld/marked — real notes with marks added: cards per file, so a
  change that loses real gaps shows.

Run: .venv/bin/python bench/unmarked_corpus.py [--no-checks] [--show N] [DIR ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT = [ROOT.parent / "shared" / "corpus" / "realworld" / "unmarked",
           ROOT / "tests" / "fixtures" / "unmarked",
           ROOT.parent / "shared" / "corpus" / "realworld" / "marked"]


def measure(folder: Path, *, checks: bool, show: int) -> dict[str, object]:
    """Build `folder` (copied) once; per file: its kind, whether marked, its cards."""
    from ankigen.build import build
    from ankigen.cards import deck_name

    with tempfile.TemporaryDirectory(prefix="ankigen-unmarked-") as tmp:
        vault = Path(tmp) / "vault"
        shutil.copytree(folder, vault, ignore=shutil.ignore_patterns(".ankigen"))
        os.environ["ANKIGEN_CACHE_DIR"] = str(Path(tmp) / "cache")
        hook = None
        if checks:
            from ankigen.checks import build_hook

            hook = build_hook("cpu")
        t0 = time.perf_counter()
        result = build([vault], Path(tmp) / "deck.apkg", checks=hook, use_cache=False, now=1)
        seconds = time.perf_counter() - t0
        cards: dict[str, list[str]] = {}
        for p in result.parsed_files:
            cards.setdefault(p.rel, [])
        docs = {d.path: d for d in result.docs}
        by_deck = {deck_name(rel): rel for rel in cards}
        for deck, front in _fronts(Path(tmp) / "deck.apkg"):
            cards[by_deck[deck]].append(front)
        kinds = {rel: docs[rel].kind for rel in cards}
        marked = {rel: bool(docs[rel].assessments) for rel in cards}  # only marks make them
    return {"folder": folder, "cards": cards, "kinds": kinds, "marked": marked,
            "checks": result.checks, "seconds": seconds, "show": show}


def _fronts(apkg: Path) -> list[tuple[str, str]]:
    """(deck name, first field as text) of every card in a package."""
    import json
    import re
    import sqlite3
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(apkg) as z:
            z.extract("collection.anki2", tmp)
        db = sqlite3.connect(str(Path(tmp) / "collection.anki2"))
        try:
            decks = {int(k): v["name"] for k, v in
                     json.loads(db.execute("SELECT decks FROM col").fetchone()[0]).items()}
            rows = db.execute("SELECT c.did, n.flds FROM cards c JOIN notes n ON c.nid = n.id")
            out = [(decks[did], re.sub(r"<[^>]+>", " ", flds.split("\x1f")[0]).strip())
                   for did, flds in rows]
        finally:
            db.close()
    return [(d, " ".join(f.split())) for d, f in out]


def report(m: dict[str, object]) -> tuple[int, int]:
    """Print one corpus's numbers. In a corpus of unmarked notes every file outside a
    `sessions/` folder is unmarked and not a session by construction: the denominator
    is those files, whatever the parser thinks of them, so a file it wrongly takes for a
    marked one still counts against it. Returns (files yielding cards, such files)."""
    cards: dict[str, list[str]] = m["cards"]  # type: ignore[assignment]
    kinds: dict[str, str] = m["kinds"]  # type: ignore[assignment]
    marked: dict[str, bool] = m["marked"]  # type: ignore[assignment]
    show = int(m["show"])  # type: ignore[call-overload]
    unmarked_corpus = "unmarked" in Path(str(m["folder"])).parts
    sessions = {r for r in cards if r.startswith("sessions/")}
    plain = [r for r in cards if r not in sessions] if unmarked_corpus else []
    yielding = [rel for rel in plain if cards[rel]]
    shape = Counter(("marked" if marked[r] else kinds[r]) for r in cards)
    print(f"\n== {m['folder']}  ({len(cards)} files; the parser calls them: "
          + ", ".join(f"{n} {k}" for k, n in sorted(shape.items())) + f"; {m['seconds']:.1f} s)")
    print(f"checks: {m['checks']}")
    if unmarked_corpus:
        ratio = len(yielding) / len(plain) if plain else 0.0
        print(f"unmarked non-recall files yielding any card: {len(yielding)} / {len(plain)} "
              f"= {ratio:.1%}  ({sum(len(cards[r]) for r in yielding)} cards)")
        wrong = [r for r in plain if marked[r] or kinds[r] == "recall"]
        for rel in wrong:
            print(f"  taken for {'marked' if marked[rel] else 'a session'}: {rel}")
    for rel in yielding:
        print(f"  {rel}: {len(cards[rel])} cards")
        for front in cards[rel][:show]:
            print(f"      {front[:150]!r}")
    others = sorted(set(cards) - set(plain))
    if others:
        print("sessions and marked notes: cards per file")
        for rel in others:
            print(f"  {rel}: {len(cards[rel])} ({'marked' if marked[rel] else kinds[rel]})")
    return len(yielding), len(plain)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dirs", nargs="*", type=Path)
    ap.add_argument("--no-checks", action="store_true", help="parse only (no code is run)")
    ap.add_argument("--show", type=int, default=3, help="fronts shown per offending file")
    args = ap.parse_args()
    total_yield = total_plain = 0
    for folder in args.dirs or DEFAULT:
        if not folder.is_dir():
            print(f"skipping {folder}: not a folder")
            continue
        y, p = report(measure(folder, checks=not args.no_checks, show=args.show))
        total_yield += y
        total_plain += p
    if total_plain:
        print(f"\nall corpora: {total_yield} / {total_plain} unmarked non-recall files yield "
              f"cards = {total_yield / total_plain:.1%} (target <= 1 %)")


if __name__ == "__main__":
    main()
