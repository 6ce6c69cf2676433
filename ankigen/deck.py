"""genanki models and decks with fixed ids, per-note modification times, atomic write."""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import genanki

from . import render
from .cards import BASIC_FIELDS, CLOZE_FIELDS
from .errors import OutputError
from .identity import public_mode, short_id
from .model import Card

# Constants in [2^30, 2^31): Anki matches note types by id. Change the templates'
# text (and TEMPLATE_VERSION) rather than an id, or every note would be duplicated.
BASIC_MODEL_ID = 1_607_392_319
CLOZE_MODEL_ID = 1_607_392_320
ROOT_DECK_ID = 1_704_166_019
TEMPLATE_VERSION = 1

_BACK = """{{#Back}}<div class="back">{{Back}}</div>{{/Back}}
{{#Check}}<div class="check">{{Check}}</div>{{/Check}}
{{#WhatYouWrote}}<div class="wrote"><div class="label">What you wrote</div>{{WhatYouWrote}}</div>{{/WhatYouWrote}}
<div class="source">{{Source}}</div>"""


def _model_fields(names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"name": n} for n in names]


def _model(model_id: int, name: str, fields: tuple[str, ...], template: dict[str, str],
           model_type: int = genanki.Model.FRONT_BACK) -> genanki.Model:
    return genanki.Model(model_id, name, fields=_model_fields(fields), templates=[template],
                         css=render.css(), model_type=model_type, sort_field_index=0)


BASIC_MODEL = _model(BASIC_MODEL_ID, "ankigen basic", BASIC_FIELDS, {
    "name": "Gap", "qfmt": "{{Front}}", "afmt": '{{FrontSide}}<hr id="answer">' + _BACK})
CLOZE_MODEL = _model(CLOZE_MODEL_ID, "ankigen cloze", CLOZE_FIELDS, {
    "name": "Cloze", "qfmt": "{{cloze:Text}}", "afmt": "{{cloze:Text}}" + _BACK},
    model_type=genanki.Model.CLOZE)

MODELS = {"basic": BASIC_MODEL, "cloze": CLOZE_MODEL}


def deck_id(name: str) -> int:
    """Stable per deck name (Anki matches decks by name; the id only has to be stable)."""
    return ROOT_DECK_ID + zlib.crc32(name.encode("utf-8")) % (2**30)


class TimedNote(genanki.Note):  # type: ignore[misc]
    """A note stamped with the time its content last changed, not the build time.

    With genanki's one stamp per package every note looks newer on each import and
    Anki rewrites them all; with this only the notes that changed are updated.
    """

    def __init__(self, *args: Any, mtime: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mtime = mtime

    def write_to_db(self, cursor: Any, timestamp: float, deck_id: int, id_gen: Any) -> None:
        super().write_to_db(cursor, self.mtime, deck_id, id_gen)


class VaultPackage(genanki.Package):  # type: ignore[misc]
    """genanki's Package, writing the collection's deck and model JSON once.

    genanki re-reads and re-writes both JSON blobs (the models carry our CSS) once per
    deck; a vault has a deck per file, which made that quadratic.
    """

    def write_to_db(self, cursor: Any, timestamp: float, id_gen: Any) -> None:
        from genanki.apkg_col import APKG_COL
        from genanki.apkg_schema import APKG_SCHEMA

        cursor.executescript(APKG_SCHEMA)
        cursor.executescript(APKG_COL)
        (decks_json,) = cursor.execute("SELECT decks FROM col").fetchone()
        (models_json,) = cursor.execute("SELECT models FROM col").fetchone()
        decks, models = json.loads(decks_json), json.loads(models_json)
        for deck in self.decks:
            decks[str(deck.deck_id)] = deck.to_json()
            for note in deck.notes:
                deck.add_model(note.model)
            for model in deck.models.values():
                models[str(model.model_id)] = model.to_json(timestamp, deck.deck_id)
        cursor.execute("UPDATE col SET decks = ?, models = ?",
                       (json.dumps(decks), json.dumps(models)))
        for deck in self.decks:
            for note in deck.notes:
                note.write_to_db(cursor, timestamp, deck.deck_id, id_gen)


def to_package(cards: Iterable[tuple[Card, int, int]]) -> genanki.Package:
    """(card, mtime, due) triples → a package with one deck per notes file."""
    decks: dict[str, genanki.Deck] = {}
    for card, mtime, due in cards:
        deck = decks.get(card.deck)
        if deck is None:
            deck = decks[card.deck] = genanki.Deck(deck_id(card.deck), card.deck)
        tags = [*card.tags, f"ankigen::id::{short_id(card.guid)}"]
        note = TimedNote(model=MODELS[card.model], fields=list(card.fields), tags=tags,
                         guid=card.guid, due=due, mtime=mtime)
        deck.add_note(note)
    return VaultPackage(list(decks.values()))


def write_package(package: genanki.Package, out: Path, timestamp: float) -> None:
    """Write atomically: a temp file beside the target, then rename."""
    blocker = next((p for p in [out.parent, *out.parent.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise OutputError(f"cannot write: {blocker} is not a folder", path=str(out))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path=str(out)) from None
    try:
        package.write_to_file(tmp, timestamp=timestamp)
        os.chmod(tmp, public_mode())
        os.replace(tmp, out)
    except OSError as exc:
        raise OutputError(f"cannot write: {exc.strerror or exc}", path=str(out)) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
