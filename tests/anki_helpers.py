"""Import decks into a real Anki collection (the official `anki` backend) and render cards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from anki.collection import Collection, ImportAnkiPackageOptions, ImportAnkiPackageRequest
from anki.import_export_pb2 import ImportAnkiPackageUpdateCondition as UC


@dataclass
class ImportLog:
    new: int
    updated: int
    duplicate: int
    conflicting: int


def import_apkg(col: Collection, apkg: Path) -> ImportLog:
    opts = ImportAnkiPackageOptions(
        merge_notetypes=True,
        update_notes=UC.IMPORT_ANKI_PACKAGE_UPDATE_CONDITION_IF_NEWER,
        update_notetypes=UC.IMPORT_ANKI_PACKAGE_UPDATE_CONDITION_IF_NEWER,
        with_scheduling=False,
    )
    log = col.import_anki_package(ImportAnkiPackageRequest(package_path=str(apkg), options=opts)).log
    return ImportLog(len(log.new), len(log.updated), len(log.duplicate), len(log.conflicting))


def rendered(col: Collection) -> list[tuple[str, str, str]]:
    """(guid, question html, answer html) for every card, rendered by Anki itself."""
    out = []
    for cid in col.find_cards(""):
        card = col.get_card(cid)
        out.append((card.note().guid, card.question(), card.answer()))
    return out


def review(col: Collection, guid: str, ease: int = 3) -> int:
    """Answer the first card of a note as a learner would; returns the card id."""
    nid = next(n for n in col.find_notes("") if col.get_note(n).guid == guid)
    cid = col.get_note(nid).card_ids()[0]
    card = col.get_card(cid)
    card.start_timer()
    col.sched.answerCard(card, ease)
    return cid
