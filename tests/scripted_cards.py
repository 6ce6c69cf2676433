"""A scripted "model" for `ankigen build --llm` tests: it reads the card writer's real
request (the JSON between <data> and </data>) and answers as a careful model would, by rules
a test can steer. Served by fake_openai.FakeOpenAI, so the real client talks HTTP to it.

Careful by default: the front is the plain question in the gap's topic ("In Convolutional
nets, what about padding and stride?"); the back is the tutor's last answer line (or, with
none, the first offered passage), citing it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fake_openai import Reply

_DATA_RE = re.compile(r"<data>\n(.*)\n</data>", re.S)
_LEAD = re.compile(r"^\s*(?:=>|>|🟢|🟡|🔴)\s*(?:=>\s*)?")

Card = dict[str, Any]


def data_of(body: dict[str, Any]) -> dict[str, Any]:
    user = body["messages"][1]["content"]
    m = _DATA_RE.search(user)
    assert m, "the card writer's request carries its data between <data> and </data>"
    result: dict[str, Any] = json.loads(m.group(1))
    return result


def careful(gap: dict[str, Any]) -> Card | None:
    """The card a careful model writes for one gap, or None when it has no answer."""
    tutor = [(lid, _LEAD.sub("", text)) for lid, who, text in gap["lines"] if who == "tutor"]
    answers = [(lid, t) for lid, t in tutor if t]
    # The plain question, with the topic said as a careful model would: it names its subject.
    asks = gap["asks"].split(" — ", 1)[-1]
    front = f"In {gap['topic']}, {asks[:1].lower()}{asks[1:]}"
    if answers:
        lid, text = answers[-1]
        return {"gap": gap["id"], "front": front, "back": text, "cites": [lid]}
    if gap["passages"]:
        sid, _, text = gap["passages"][0]
        return {"gap": gap["id"], "front": front, "back": text, "cites": [sid]}
    return None


def mimic(gap: dict[str, Any]) -> Card | None:
    """The plain card reworded as a model might: its question without the topic in front,
    its answer cited by the lines that share most words with it."""
    if not gap["answer"]:
        return None
    words = set(re.findall(r"[a-z]{4,}", gap["answer"].lower()))
    rows = [*(r[::2] for r in gap["lines"]), *((s[0], s[2]) for s in gap["passages"])]
    best = max(rows, key=lambda r: len(words & set(re.findall(r"[a-z]{4,}", r[1].lower()))))
    front = gap["asks"].split(" — ", 1)[-1]
    return {"gap": gap["id"], "front": front[:1].upper() + front[1:], "back": gap["answer"],
            "cites": ["A", best[0]]}


@dataclass
class CardModel:
    """Answers every request with `careful` cards, except where a test steers it:
    `edit(gap, card)` may change or drop (return None) a card; `skip` leaves requests
    unanswered by gap count; `replies` are sent first, in order, before any careful answer
    (raw Replies: malformed JSON, 500s, timeouts)."""

    edit: Callable[[dict[str, Any], Card], Card | None] | None = None
    write: Callable[[dict[str, Any]], Card | None] = careful
    replies: list[Reply] = field(default_factory=list)
    seen: list[dict[str, Any]] = field(default_factory=list)  # each request's data, in order

    def __call__(self, body: dict[str, Any]) -> Reply:
        data = data_of(body)  # a re-ask too: messages[1] is still the original request
        self.seen.append(data)
        if self.replies:
            return self.replies.pop(0)
        cards = []
        for gap in data["gaps"]:
            card = self.write(gap)
            if card is not None and self.edit is not None:
                card = self.edit(gap, card)
            if card is not None:
                cards.append(card)
        return Reply({"cards": cards})
