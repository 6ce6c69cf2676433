"""Score the cards ankigen makes against the card rubric (docs/cards.md), per split.

    .venv/bin/python bench/card_rubric.py [tests/fixtures/cards] [--split heldout] [--json]

Builds every gap of the labelled set (tests/fixtures/cards/<split>/*.md, labels in
<split>/labels.json) offline, matches each card to its label and checks every rule. A card
meets the rubric when it passes all of them; a labelled gap with no card and a card with no
label are misses too. Prints the share per split and lists each miss with the rules it broke.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ankigen.cards import wanted  # noqa: E402
from ankigen.model import Document, Gap, GapKind  # noqa: E402
from ankigen.parse import parse_file  # noqa: E402
from ankigen.text import read_notes  # noqa: E402

DEFAULT_SET = ROOT / "tests" / "fixtures" / "cards"
FRONT_WORDS = 60
# Fronts that ask nothing in particular: the rubric's "one question about exactly the point".
GENERIC = ("missing or wrong", "what about those details", "what about this",
           "what is wrong here", "what did you forget here")
_CODE_SPAN = re.compile(r"`[^`]*`")
_CODE_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?:\(\))?|[A-Za-z_]\w*\(\)")
_WORD = re.compile(r"[\w'-]+")
_NORM = re.compile(r"[^\w]+")


@dataclass
class Result:
    split: str
    file: str
    line: int
    label: dict[str, Any] | None
    front: str
    broke: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.broke


def front_of(gap: Gap) -> str:
    """What the front shows, as text: the prompt (a cloze's term shown as […])."""
    text = gap.prompt
    if gap.kind is GapKind.WRONG_CODE and gap.code:
        text += "\n" + gap.code
    return text


def back_of(gap: Gap) -> str:
    return gap.answer or ""


def _norm(text: str) -> str:
    return " ".join(_NORM.sub(" ", text.lower()).split())


def _has(text: str, term: str | list[str]) -> bool:
    terms = term if isinstance(term, list) else [term]
    low = text.lower()
    return any(t.lower() in low for t in terms)


def _prose(front: str, gap: Gap) -> str:
    text = _CODE_SPAN.sub(" ", front)
    if gap.code:
        text = text.replace(gap.code, " ")
    return text


def _asks(gap: Gap, front: str) -> str:
    """The front without its leading topic ("Topic — …")."""
    if gap.topic and front.startswith(gap.topic + " — "):
        return front[len(gap.topic) + 3 :]
    return front


def _unshown(gap: Gap, notes: str, others: set[int] | frozenset[int], front: str) -> int:
    """How many of the learner's words in the gap's span the front does not show (lines
    that are gaps of their own excepted: they have their own cards)."""
    lines = notes.split("\n")
    shown = set(_norm(front).split())
    words = 0
    for n in range(gap.span.start, gap.span.end + 1):
        line = lines[n - 1].strip() if 0 < n <= len(lines) else ""
        if n in others or not line or line.startswith(("=>", ">", "#", "🟢", "🟡", "🔴")):
            continue
        words += sum(1 for w in _norm(line.split("=>")[0]).split() if w not in shown)
    return words


def rubric(gap: Gap, notes: str, others: set[int] | frozenset[int] = frozenset()) -> list[str]:
    """The rules every card must meet, whatever its label says."""
    broke = []
    front = front_of(gap)
    prose = _prose(front, gap)
    if prose.count("?") > 1:
        broke.append("one question: more than one '?' on the front")
    low = prose.lower()
    generic = [g for g in GENERIC if g in low]
    if generic:
        broke.append(f"one question: generic front ({generic[0]!r})")
    asks = _asks(gap, prose)
    if len(_WORD.findall(asks.replace("[…]", ""))) < 3:
        broke.append("topic only: the front asks nothing of its own")
    words = len(_WORD.findall(prose))
    if words > FRONT_WORDS:
        broke.append(f"short: {words} words of prose on the front (> {FRONT_WORDS})")
    first = asks.lstrip(" “\"'(…").split(" ", 1)[0]
    head = _WORD.match(first)
    if asks.lstrip().startswith("…") or (head and not re.search(
            rf"(?<![\w]){re.escape(head.group(0))}(?![\w])", notes, re.I)
            and head.group(0).lower() not in STARTERS):
        broke.append(f"starts mid-word: {asks[:30]!r}")
    for name in _CODE_NAME.findall(front):
        if name not in notes and not name.startswith(("e.g", "i.e")):
            broke.append(f"code names exact: {name!r} is not in the notes")
    if gap.term and gap.term.lower() in prose.lower():
        broke.append(f"answer on the front: {gap.term!r}")
    back = back_of(gap)
    if back:
        tail = back.rstrip()
        if tail.endswith(("…", "...", ",", ";")) or re.search(r"\b(?:and|or|the|a)$", tail):
            broke.append(f"back cut: ends {tail[-30:]!r}")
    wrote = gap.context.strip()
    if not wrote:
        if _unshown(gap, notes, others, prose) >= 5:
            broke.append("what you wrote: empty, though the learner wrote more than the front shows")
    else:
        w, f = _norm(wrote).split(), _norm(prose.replace("[…]", " ")).split()
        same = difflib.SequenceMatcher(None, w, f, autojunk=False).ratio()
        if " ".join(w) in " ".join(f) or same >= 0.75:
            broke.append(f"what you wrote: a copy of the front ({same:.0%} alike)")
    return broke


STARTERS = frozenset("what which how why when where who whom is are do does did can could "
                     "name the a an in on you your one".split())


def label_rules(gap: Gap, label: dict[str, Any]) -> list[str]:
    broke = []
    front = front_of(gap)
    if label.get("kind") and gap.kind.value != label["kind"]:
        broke.append(f"kind: {gap.kind.value}, expected {label['kind']}")
    for term in label["front"].get("has", []):
        if not _has(front, term):
            broke.append(f"front lacks {term!r}")
    for term in label["front"].get("not", []):
        if _has(front, term):
            broke.append(f"front shows {term!r}")
    back = label.get("back")
    if back is None:
        if not gap.unanswered:
            broke.append("back: the notes hold no answer, yet the card gives one")
    else:
        if gap.unanswered:
            broke.append("back: unanswered")
        for term in back.get("has", []):
            if not _has(back_of(gap), term):
                broke.append(f"back lacks {term!r}")
        for term in back.get("not", []):
            if _has(back_of(gap), term):
                broke.append(f"back shows {term!r}")
    return broke


def _line_of(lines: list[str], at: str, where: str) -> int:
    found = [n for n, line in enumerate(lines, start=1) if at in line]
    if len(found) != 1:
        raise SystemExit(f"{where}: label text {at!r} is on {len(found)} lines, not one")
    return found[0]


# (notes file, its document, its cards' gaps) → the gaps the cards are made from (a model's)
Rewrite = Callable[[Path, Document, list[Gap]], list[Gap]]


def score_split(folder: Path, rewrite: Rewrite | None = None) -> list[Result]:
    """Every labelled card of one split, scored; `rewrite` swaps in other cards' gaps (the
    ones a model wrote: bench/card_llm.py), matched to the same labels."""
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
    split = labels.get("split", folder.name)
    results: list[Result] = []
    by_file: dict[str, list[dict[str, Any]]] = {}
    for label in labels["gaps"]:
        by_file.setdefault(label["file"], []).append(label)
    for path in sorted(folder.glob("*.md")):
        notes = read_notes(path, path.name).text
        lines = notes.split("\n")
        doc = parse_file(path, path.name)
        gaps = [g for g in doc.gaps if wanted(g, False)]
        if rewrite is not None:
            gaps = rewrite(path, doc, gaps)
        pending = {id(label): (_line_of(lines, label["at"], f"{path.name}"), label)
                   for label in by_file.pop(path.name, [])}
        fronts: set[str] = set()
        for gap in gaps:
            others = {n for g in gaps if g is not gap and g.mark is None
                      for n in range(g.span.start, g.span.end + 1)}
            base = rubric(gap, notes, others)
            front = front_of(gap)
            if _norm(front) in fronts:
                base.append("duplicate: another card has this front")
            fronts.add(_norm(front))
            mine = [(key, label) for key, (line, label) in pending.items() if line == gap.line]
            if not mine:
                results.append(Result(split, path.name, gap.line, None, front,
                                      [*base, "no label: a card nobody asked for"]))
                continue
            key, label = min(mine, key=lambda kl: len(label_rules(gap, kl[1])))
            del pending[key]
            results.append(Result(split, path.name, gap.line, label, front,
                                  base + label_rules(gap, label)))
        for line, label in pending.values():
            results.append(Result(split, path.name, line, label, "", ["no card"]))
    for name in by_file:
        raise SystemExit(f"{folder}/labels.json names {name}, which is not in the set")
    return results


def splits(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "labels.json").exists())


def report(results: list[Result]) -> tuple[int, int]:
    good = sum(r.ok for r in results)
    return good, len(results)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", nargs="?", type=Path, default=DEFAULT_SET)
    ap.add_argument("--split", action="append", help="only these splits (folder names)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--all", action="store_true", help="list every card, not only the misses")
    args = ap.parse_args(argv)
    out: dict[str, Any] = {}
    for folder in splits(args.root):
        if args.split and folder.name not in args.split:
            continue
        results = score_split(folder)
        good, total = report(results)
        out[folder.name] = {"met": good, "cards": total, "share": good / total if total else 0.0,
                            "misses": [{"file": r.file, "line": r.line, "front": r.front,
                                        "broke": r.broke} for r in results if not r.ok]}
        if args.json:
            continue
        print(f"{folder.name}: {good}/{total} cards meet every rule ({good / total:.0%})")
        for r in results:
            if r.ok and not args.all:
                continue
            mark = "ok  " if r.ok else "MISS"
            print(f"  {mark} {r.file}:{r.line}  {r.front[:110]!r}")
            for why in r.broke:
                print(f"         - {why}")
    if args.json:
        print(json.dumps(out, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
