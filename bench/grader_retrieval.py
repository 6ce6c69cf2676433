"""How often BM25 retrieval offers the passage that settles a contradicted claim.

When the sources are too long to show the judge whole, each claim is judged against the
passages retrieved for it (grader/coverage.offer_for). A claim the tutor marked 🔴 can
only be judged wrong if the passage that contradicts it is among them. On a labelled split:

- a settled contradiction is a tutor 🔴 assessment whose `>` quote is source text (the
  labelling rules make it verbatim); its passage is the one holding the quote;
- its claim is the learner's sentence in that part (the recall with the marks taken out)
  that shares most words with the tutor's feedback and quote;
- it is found when that passage is among the claim's retrieved passages.

    .venv/bin/python bench/grader_retrieval.py [tests/fixtures/labelled]

Prints one line per contradiction (found or missed, the claim, the passage) and the share.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ankigen.model import Mark  # noqa: E402
from ankigen.parse import parse_text  # noqa: E402
from ankigen.text import read_notes  # noqa: E402
from grader.coverage import offer_for  # noqa: E402
from grader.evaluate import sessions_in  # noqa: E402
from grader.recall import recall_from_text, sentence_claims  # noqa: E402
from grader.retrieve import Index, overlap  # noqa: E402
from grader.sources import load_sources  # noqa: E402


def _flat(text: str) -> str:
    return " ".join(text.split())


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "tests/fixtures/labelled"
    found = total = 0
    for session in sessions_in(folder):
        path = session / "recall.md"
        original = read_notes(path).text
        marked = parse_text(original, str(path), kind="recall")
        sources = load_sources([session / "sources"])
        index = Index(sources.passages)
        recall = recall_from_text(original, str(path))
        claims = sentence_claims(recall)
        for part in marked.parts:
            for a in part.assessments:
                if a.mark is not Mark.RED or not a.quote.strip():
                    continue
                quote = _flat(a.quote)
                settling = [p for p in sources.passages if quote in _flat(p.text)
                            or _flat(p.text) in quote]
                mine = [c for c in claims if c.part == part.index]
                if not settling or not mine:
                    print(f"  skip  {session.name} part {part.index + 1}: "
                          f"{'quote not in one passage' if not settling else 'no claims'}")
                    continue
                about = f"{a.feedback} {quote}"
                claim = max(mine, key=lambda c: overlap(c.text, about))
                topic = recall.doc.parts[part.index].topic
                offered = {p.id for p, _ in offer_for(claim, topic, index)}
                hit = any(p.id in offered for p in settling)
                found += hit
                total += 1
                print(f"  {'found' if hit else 'MISS '} {session.name} part {part.index + 1}: "
                      f"“{claim.text[:70]}” ← {settling[0].cite()}")
    share = found / total if total else 0.0
    print(f"\nsettling passage offered for {found} of {total} contradicted claims ({share:.0%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
