"""Score the cards ankigen makes against the card rubric (docs/cards.md), per split.

    .venv/bin/python bench/card_rubric.py [tests/fixtures/cards] [--split tuning] [--json]
    .venv/bin/python bench/card_rubric.py --aggregate-only      # held-out: totals only

Builds every gap of the labelled set (tests/fixtures/cards/<split>/*.md, labels in
<split>/labels.json) offline, matches each card to its label and checks every rule. A card
meets the rubric when it passes all of them; a labelled gap with no card and a card with no
label are misses too. Prints the share per split and lists each miss with the rules it broke;
a split named with `--aggregate-only` (`heldout` when the flag has no name) prints only its
totals and misses per rule, never a card, so a held-out split is scored without being read.
The rules that need no label are ankigen/rubric.py's (the card writer holds model cards to
them); the ones here read the labels.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ankigen.cards import wanted  # noqa: E402
from ankigen.model import Document, Gap  # noqa: E402
from ankigen.parse import parse_file  # noqa: E402

# The rules that need no label live in ankigen (the card writer holds model cards to them).
from ankigen.rubric import back_of, front_of, rubric, rule_of  # noqa: E402
from ankigen.rubric import norm as _norm  # noqa: E402
from ankigen.text import read_notes  # noqa: E402

DEFAULT_SET = ROOT / "tests" / "fixtures" / "cards"
HELDOUT = "heldout"  # printed as totals only, unless --show-heldout


def add_split_visibility(ap: argparse.ArgumentParser, card: str = "") -> None:
    """The card benches' options for which splits print totals only (the held-out one
    always, unless --show-heldout)."""
    ap.add_argument("--aggregate-only", action="append", nargs="?", const=HELDOUT,
                    metavar="SPLIT", help=f"print only totals for this split{card} [heldout]")
    ap.add_argument("--show-heldout", action="store_true",
                    help="print the held-out split card by card too (it is totals only "
                         "unless this is given: never tune on it)")


def hidden_splits(args: argparse.Namespace) -> set[str]:
    """The splits `add_split_visibility`'s options print as totals only."""
    return set(args.aggregate_only or ()) | (set() if args.show_heldout else {HELDOUT})


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


def _has(text: str, term: str | list[str]) -> bool:
    terms = term if isinstance(term, list) else [term]
    low = text.lower()
    return any(t.lower() in low for t in terms)


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


def misses_by_rule(results: list[Result]) -> dict[str, int]:
    """How many cards miss each rule (a card counted once per rule)."""
    rules: dict[str, int] = {}
    for r in results:
        for name in {rule_of(b) for b in r.broke}:
            rules[name] = rules.get(name, 0) + 1
    return dict(sorted(rules.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", nargs="?", type=Path, default=DEFAULT_SET)
    ap.add_argument("--split", action="append", help="only these splits (folder names)")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--all", action="store_true", help="list every card, not only the misses")
    add_split_visibility(ap)
    args = ap.parse_args(argv)
    hidden = hidden_splits(args)
    out: dict[str, Any] = {}
    for folder in splits(args.root):
        if args.split and folder.name not in args.split:
            continue
        results = score_split(folder)
        good, total = report(results)
        out[folder.name] = {"met": good, "cards": total, "share": good / total if total else 0.0,
                            "misses_by_rule": misses_by_rule(results)}
        if folder.name not in hidden:
            out[folder.name]["misses"] = [{"file": r.file, "line": r.line, "front": r.front,
                                           "broke": r.broke} for r in results if not r.ok]
        if args.json:
            continue
        print(f"{folder.name}: {good}/{total} cards meet every rule ({good / total:.0%})")
        if folder.name in hidden:
            for name, n in out[folder.name]["misses_by_rule"].items():
                print(f"  {name}: {n} card{'s' * (n != 1)}")
            continue
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
