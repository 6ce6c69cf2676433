"""Decks for download: one session's, and the weak-spot deck of all of a learner's sessions.

Cards come from ankigen (parse the graded markdown, `card_for` each 🟡/🔴 gap, its package
writer). A note's GUID is keyed by user, session and the gap's anchor (its identity in
ankigen), so the same gap has the same note in the session deck, the weak-spot deck and
every re-download: importing again updates it in place, never duplicates it.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ankigen.cards import card_for, wanted
from ankigen.deck import MODELS, DeckInfo, NoteRow, VaultPackage, deck_id, write_package
from ankigen.identity import guid_for, short_id
from ankigen.model import Card
from ankigen.parse import parse_text

APKG_TYPE = "application/apkg"
WEAK_SPOTS = "ankigen::weak-spots"


@dataclass(frozen=True)
class Graded:
    """What a deck needs of a graded session."""

    user_id: int
    session_id: int
    title: str
    markdown: str
    graded_at: float


def note_guid(user_id: int, session_id: int, anchor: str, n: int = 0) -> str:
    return guid_for("ankigen-service", user_id, session_id, anchor, *([n] if n else []))


def session_cards(g: Graded) -> list[Card]:
    doc = parse_text(g.markdown, f"session-{g.session_id}.md", kind="recall")
    taken: set[str] = set()
    cards = []
    for ordinal, gap in enumerate(x for x in doc.gaps if wanted(x, include_green=False)):
        n = 0
        while (guid := note_guid(g.user_id, g.session_id, gap.anchor, n)) in taken:
            n += 1  # two gaps with one anchor in a session: a counter, as ankigen does
        taken.add(guid)
        cards.append(card_for(gap, doc, ordinal, guid=guid, keep_gap=False))
    return cards


def session_deck_name(g: Graded) -> str:
    title = re.sub(r"\s*::\s*", " ", g.title).strip() or "Recall"
    return f"ankigen::sessions::{g.session_id} {title}"


def package(deck: str, sessions: Sequence[Graded]) -> bytes:
    """One deck holding every gap of `sessions`, in their order (newest first for the
    weak-spot deck); each note stamped with its session's grading time, so re-imports
    update only what a re-grade changed."""
    d = DeckInfo(deck_id(deck), deck)
    rows: list[NoteRow] = []
    for g in sessions:
        for card in session_cards(g):
            card = replace(card, deck=deck)
            tags = (*card.tags, f"ankigen::id::{short_id(card.guid)}",
                    f"ankigen::session::{g.session_id}")
            rows.append(NoteRow.of(d.deck_id, MODELS[card.model], card.fields, tags, card.guid,
                                   len(rows), int(g.graded_at)))
    stamp = max((int(g.graded_at) for g in sessions), default=0)
    with tempfile.TemporaryDirectory(prefix="grader-deck-") as tmp:
        out = Path(tmp) / "deck.apkg"
        write_package(VaultPackage([d], rows), out, timestamp=stamp)
        return out.read_bytes()


def filename(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "deck"
    return f"{safe[:80]}.apkg"
