"""A model judges each card of the labelled set blind against the card rubric (docs/cards.md).

    .venv/bin/python bench/card_judge.py --base-url http://127.0.0.1:PORT/v1 --model NAME
    # the cards a model wrote (ankigen build --llm), from the endpoint bench/card_llm.py used:
    .venv/bin/python bench/card_judge.py --base-url URL --model NAME --llm-cards URL

The scripted scorer (bench/card_rubric.py) checks the rubric's terms; this asks a model
whether a learner would keep each card. The model sees the rubric, the learner's notes
around the mark (the part the card comes from) and the card as built: front, back and
"what you wrote". It never sees the labels. Answers are cached (grader's response cache),
so a run can be repeated; with the replay endpoint (../shared/tools/README.md) requests
without an answer are saved as pending and counted here as "not judged yet".
`--aggregate-only` (a split name, `heldout` when none is given) prints that split's totals
only: cards kept, judged and pending, and how often each rule was named, never a card.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ankigen.cards import wanted  # noqa: E402
from ankigen.errors import EndpointError, ModelOutputError  # noqa: E402
from ankigen.llm import LLM, ResponseCache, endpoint_from  # noqa: E402
from ankigen.parse import parse_file  # noqa: E402
from ankigen.text import read_notes  # noqa: E402
from bench.card_rubric import (  # noqa: E402
    DEFAULT_SET,
    Rewrite,
    add_split_visibility,
    back_of,
    front_of,
    hidden_splits,
    splits,
)

PROMPT_VERSION = "card-judge-1"
SYSTEM = """You review Anki flashcards made from a learner's marked study notes.

The learner wrote what they remembered of a chapter; a tutor marked parts 🟢 (right), 🟡
(partly right, vague or missing pieces) or 🔴 (wrong or a key omission), with `=>` feedback
and `>` quoted answers. Each card should teach exactly what the tutor flagged.

A good card meets every rule:
1. The front asks one question, about exactly the point the mark or its feedback flags.
2. It can be answered from memory (not from reading the front).
3. The front does not contain the answer's key terms (a cloze deletion aside).
4. Code names are exact, as in the notes.
5. The back is the best answer the notes hold, in whole sentences, not cut mid-list.
6. "What you wrote" shows the learner's own words near the gap and is not a copy of the front.
7. The front has at most 60 words of prose (code aside).

Judge the card as a learner reviewing it on a phone the morning after would.
Reply with only a JSON object: {"keep": true or false, "failed": [rule numbers broken],
"why": "one sentence"}. keep is true only when no rule is broken."""


class Verdict(BaseModel):
    keep: bool
    failed: list[int]
    why: str


def cards(folder: Path, rewrite: Rewrite | None = None) -> list[dict[str, Any]]:
    """Every card the set's notes give, with the part of the notes it comes from; `rewrite`
    swaps in the gaps a model worded (bench/card_llm.py)."""
    out = []
    for path in sorted(folder.glob("*.md")):
        lines = read_notes(path, path.name).text.split("\n")
        doc = parse_file(path, path.name)
        gaps = [g for g in doc.gaps if wanted(g, False)]
        for gap in rewrite(path, doc, gaps) if rewrite is not None else gaps:
            part = doc.parts[gap.part] if gap.part < len(doc.parts) else None
            start, end = (part.span.start, part.span.end) if part else (gap.span.start, gap.span.end)
            out.append({"file": path.name, "line": gap.line, "front": front_of(gap),
                        "back": back_of(gap), "wrote": gap.context,
                        "notes": "\n".join(lines[start - 1:end])})
    return out


def user_message(card: dict[str, Any]) -> str:
    # A cloze's front as Anki shows it: the deletion as […] (gap.cloze marks it with a
    # private-use character, which reads as nothing).
    return (f"The learner's notes, the part this card comes from:\n\n{card['notes']}\n\n"
            f"---\nThe card.\nFRONT:\n{card['front']}\n\nBACK:\n{card['back'] or '(none)'}\n\n"
            f"WHAT YOU WROTE:\n{card['wrote'] or '(none)'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", nargs="?", type=Path, default=DEFAULT_SET)
    ap.add_argument("--base-url")
    ap.add_argument("--model")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/ankigen-card-judge.sqlite"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--llm-cards", metavar="URL",
                    help="judge the cards a model wrote through this endpoint (the one "
                         "bench/card_llm.py used, all its requests answered) instead of offline")
    ap.add_argument("--llm-cards-model", default="replay", help="its model name [replay]")
    add_split_visibility(ap, ", no card")
    args = ap.parse_args(argv)
    hidden = hidden_splits(args)
    endpoint = endpoint_from(args.base_url, args.model, budget_s=3600)
    if endpoint is None:
        raise SystemExit("card_judge: give --base-url (or OPENAI_BASE_URL) and --model")
    summary: dict[str, Any] = {}
    writer = None
    if args.llm_cards:
        import functools

        from bench.card_llm import _rewrite

        where = endpoint_from(args.llm_cards, args.llm_cards_model, budget_s=3600)
        assert where is not None
        writer = LLM(where, reasks=1000)
    with ResponseCache(args.cache) as cache, LLM(endpoint, cache) as llm:
        for folder in splits(args.root):
            judged: list[dict[str, Any]] = []
            pending = 0
            rewrite = None if writer is None else functools.partial(_rewrite, writer, {})
            for card in cards(folder, rewrite):
                try:
                    v = llm.ask(system=SYSTEM, user=user_message(card), schema=Verdict,
                                prompt_version=PROMPT_VERSION)
                except (EndpointError, ModelOutputError):
                    pending += 1
                    continue
                judged.append({**{k: card[k] for k in ("file", "line", "front")},
                               "keep": v.keep, "failed": v.failed, "why": v.why})
            kept = sum(j["keep"] for j in judged)
            rules: dict[int, int] = {}
            for j in judged:
                for n in set(j["failed"]):
                    rules[n] = rules.get(n, 0) + 1
            summary[folder.name] = {"kept": kept, "judged": len(judged), "pending": pending,
                                    "failed_by_rule": dict(sorted(rules.items()))}
            if folder.name not in hidden:
                summary[folder.name]["cards"] = judged
            if not args.json:
                share = f"{kept / len(judged):.0%}" if judged else "-"
                print(f"{folder.name}: the model keeps {kept}/{len(judged)} cards ({share})"
                      + (f"; {pending} not judged yet" if pending else ""))
                if folder.name in hidden:
                    print("  rules named (cards): " + (", ".join(
                        f"{n}: {c}" for n, c in sorted(rules.items())) or "none"))
                    continue
                for j in judged:
                    if not j["keep"]:
                        print(f"  drop {j['file']}:{j['line']} rules {j['failed']}: {j['why']}")
    if args.json:
        print(json.dumps(summary, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
